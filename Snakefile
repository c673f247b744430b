# BCI dendrites pipeline: raw BCI two-photon sessions -> the vectorized-instructive-signal
# analysis. Run `snakemake --cores 2` (bundled data_sample/ by default).

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/register.smk"
include: "workflow/rules/align_days.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/track.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/bci.smk"
include: "workflow/rules/stats.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/qc.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/calibrate.smk"
include: "workflow/rules/validate.smk"


rule all:
    input:
        rules.stats.output,
        rules.figures.output,
        rules.qc.output,
    default_target: True
