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
        soma_events=role_plane_files("extract", "events.tsv", "soma"),
        soma_traces=role_plane_files("extract", "traces.nc", "soma"),
        dendrite_events=role_plane_files("extract", "events.tsv", "dendrite"),
        dendrite_traces=role_plane_files("extract", "traces.nc", "dendrite"),
        pairs=expand(f"{RESULTS}/track/{{subject}}/pairs.tsv", subject=SUBJECTS),
        targets=all_sessions("{results}/track/{subject}/{session}/targets.tsv"),
        epochs=all_sessions("{results}/bci/{subject}/{session}/frames.tsv"),
        trials=all_sessions("{results}/bci/{subject}/{session}/trials.tsv"),
        sessions=all_sessions("{results}/ingest/{subject}/{session}/session.json"),
    output:
        **{name: f"{RESULTS}/stats/{name}.tsv" for name in STATS_TABLES},
        summary=report(
            f"{RESULTS}/stats/summary.txt", caption="../report/summary.rst", category="Statistics"
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
