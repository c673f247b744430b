# calibrate: false-positive rate and power of the group x epoch test on simulated cohorts.
# Not part of `rule all`; run with `snakemake --cores 2 calibrate`.

import json


rule calibrate:
    output:
        f"{RESULTS}/validation/calibration.tsv",
    params:
        settings=json.dumps(stage_settings("calibrate")),
        stats=json.dumps(stage_settings("stats")),
    threads: 2
    resources:
        mem_mb=2000,
        runtime=120,
    log:
        f"{RESULTS}/logs/calibrate/calibrate.log",
    benchmark:
        f"{RESULTS}/benchmarks/calibrate/calibrate.tsv"
    shell:
        "python -m analysis.calibrate --out {output:q} --settings {params.settings:q} "
        "--stats-settings {params.stats:q} --workers {threads} 2> {log:q}"
