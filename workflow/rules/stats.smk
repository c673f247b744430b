# stats: behaviour, target activity, somato-dendritic residuals and their hierarchical tests.

STATS_TABLES = [
    "behaviour",
    "activity",
    "activity_change",
    "group_activity",
    "sd_events",
    "sd_fits",
    "contrasts",
    "separation",
    "outcome_events",
    "outcome_timecourse",
    "early_residual_change",
    "network",
    "condition_separation",
    "condition_contrasts",
    "light_separation",
    "learning_slopes",
    "tests",
]


rule stats:
    input:
        soma_events=role_plane_files("extract.events", "soma"),
        soma_traces=role_plane_files("extract.traces", "soma"),
        dendrite_events=role_plane_files("extract.events", "dendrite"),
        dendrite_traces=role_plane_files("extract.traces", "dendrite"),
        pairs=expand(artifact("track.pairs"), subject=SUBJECTS),
        targets=all_sessions("track.targets"),
        epochs=all_sessions("bci.frames"),
        trials=all_sessions("bci.trials"),
        sessions=all_sessions("ingest.session"),
    output:
        **{name: artifact("stats.table", name=name) for name in STATS_TABLES},
        summary=report(
            artifact("stats.summary"), caption="../report/summary.rst", category="Statistics"
        ),
    params:
        settings=stage_settings("stats"),
        # a param, not an input: relabelling sessions reruns stats alone
        conditions={f"{r.subject}/{r.session}": r.condition for r in SESSIONS.itertuples()},
    resources:
        mem_mb=4000,
        runtime=30,
    log:
        f"{RESULTS}/logs/stats/stats.log",
    benchmark:
        f"{RESULTS}/benchmarks/stats/stats.tsv"
    script:
        "../scripts/stats.py"
