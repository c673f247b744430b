# calibrate: false-positive rates, power and minimum detectable effect of the headline
# group x epoch test and of the condition x (group x epoch) test, on simulated closed-loop
# cohorts taken through the measurement path (analysis/calibrate.py,
# analysis/calibrate_interaction.py). Not part of `rule all`; run with
# `snakemake --cores 2 calibrate` (about 3 h on 2 cores; calibrate.parts picks the tests).

import json


rule calibrate:
    output:
        table=artifact("validation.calibration"),
        residual_size=artifact("validation.residual_size"),
        residual_size_figure=artifact("validation.residual_size_figure"),
    params:
        settings=json.dumps(stage_settings("calibrate")),
        stats=json.dumps(stage_settings("stats")),
    threads: 2
    resources:
        mem_mb=2000,
        runtime=480,
    log:
        f"{RESULTS}/logs/calibrate/calibrate.log",
    benchmark:
        f"{RESULTS}/benchmarks/calibrate/calibrate.tsv"
    shell:
        "python -m analysis.calibrate --out {output.table:q} "
        "--residual-size-out {output.residual_size:q} "
        "--residual-size-figure {output.residual_size_figure:q} --settings {params.settings:q} "
        "--stats-settings {params.stats:q} --workers {threads} 2> {log:q}"
