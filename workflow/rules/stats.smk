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
    "tests",
]


def soma_plane_file(stage, name):
    return lambda wc: [
        f"{RESULTS}/{stage}/{s}/{d}/plane{plane_of_role(s, 'soma')}/{name}"
        for s in SUBJECTS
        for d in sessions_of(s)
    ]


rule stats:
    input:
        soma_events=soma_plane_file("extract", "events.tsv"),
        soma_traces=soma_plane_file("extract", "traces.nc"),
        dendrite_events=lambda wc: [
            f"{RESULTS}/extract/{s}/{d}/plane{plane_of_role(s, 'dendrite')}/events.tsv"
            for s in SUBJECTS
            for d in sessions_of(s)
        ],
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
    resources:
        mem_mb=4000,
        runtime=30,
    log:
        f"{RESULTS}/logs/stats/stats.log",
    benchmark:
        f"{RESULTS}/benchmarks/stats/stats.tsv"
    script:
        "../scripts/stats.py"
