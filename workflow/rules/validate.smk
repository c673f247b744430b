# validate: simulate a cohort with ground truth, run this workflow on it, and score every
# imaging stage against the truth. Not part of `rule all`; run `snakemake --cores 2 validate`.

rule simulate_validation_cohort:
    output:
        directory(artifact("validation.cohort")),
    params:
        settings=stage_settings("validate"),
        preset_settings=validation_preset_settings,
    log:
        f"{RESULTS}/logs/validate/simulate.log",
    benchmark:
        f"{RESULTS}/benchmarks/validate/simulate.tsv"
    shell:
        "python -m analysis.simulate --preset {params.settings[preset]} --out {output:q} "
        "--seed {params.settings[seed]} --subjects {params.settings[n_subjects]} "
        "--days {params.settings[n_days]} --frames {params.settings[n_frames]} "
        "--tiff-compression zlib-fast 2> {log:q}"


rule run_validation_cohort:
    input:
        cohort=rules.simulate_validation_cohort.output[0],
    output:
        summary=artifact("validation.run_summary"),
    params:
        snakefile=workflow.main_snakefile,
        config=config,
    threads: workflow.cores
    log:
        f"{RESULTS}/logs/validate/run.log",
    benchmark:
        f"{RESULTS}/benchmarks/validate/run.tsv"
    script:
        "../scripts/validation_run.py"


rule validate:
    input:
        cohort=rules.simulate_validation_cohort.output[0],
        summary=rules.run_validation_cohort.output.summary,
    output:
        metrics=artifact("validation.metrics"),
    log:
        f"{RESULTS}/logs/validate/metrics.log",
    benchmark:
        f"{RESULTS}/benchmarks/validate/metrics.tsv"
    script:
        "../scripts/validation_metrics.py"
