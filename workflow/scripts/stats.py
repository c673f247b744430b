"""Cohort statistics from saved per-session results."""

import sys

import pandas as pd

from analysis import io, stats
from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)


def concat_tsv(paths, labels):
    """Concatenate tables, adding the identifying columns of each (e.g. subject, session)."""
    return pd.concat(
        [io.read_tsv(p).assign(**label) for p, label in zip(paths, labels, strict=True)],
        ignore_index=True,
    )


with rule_log(sm.log[0], rule="stats", inputs=sm.input):
    settings = stats.StatsSettings.from_mapping(sm.params.settings)
    records = [io.read_json(p) for p in sm.input.sessions]
    keys = [{"subject": r["subject"], "session": r["session"]} for r in records]
    sessions = pd.DataFrame(
        [
            {
                **k,
                "fs_hz": r["fs_hz"],
                "duration_s": r["n_frames"] / r["fs_hz"],
                "condition": sm.params.conditions[f"{k['subject']}/{k['session']}"],
            }
            for k, r in zip(keys, records, strict=True)
        ]
    )
    events = pd.concat(
        [
            concat_tsv(sm.input.soma_events, keys).assign(plane_role="soma"),
            concat_tsv(sm.input.dendrite_events, keys).assign(plane_role="dendrite"),
        ],
        ignore_index=True,
    )
    subjects = sorted({k["subject"] for k in keys})
    pairs = concat_tsv(sm.input.pairs, [{"subject": s} for s in subjects])
    soma_traces = {
        (k["subject"], k["session"]): io.read_netcdf(p)
        for p, k in zip(sm.input.soma_traces, keys, strict=True)
    }
    dendrite_dff = {
        (k["subject"], k["session"]): io.read_netcdf(p)["dff"]
        for p, k in zip(sm.input.dendrite_traces, keys, strict=True)
    }
    tables, summary = stats.compute_cohort_statistics(
        events=events,
        pairs=pairs,
        targets=concat_tsv(sm.input.targets, keys),
        epochs=concat_tsv(sm.input.epochs, keys),
        trials=concat_tsv(sm.input.trials, keys),
        sessions=sessions,
        soma_dff={key: traces["dff"] for key, traces in soma_traces.items()},
        dendrite_dff=dendrite_dff,
        soma_neuropil={key: traces["Fneu"] for key, traces in soma_traces.items()},
        settings=settings,
    )
    for name, table in tables.items():
        io.write_tsv(table, sm.output[name])
    with io.atomic_path(sm.output.summary) as tmp:
        tmp.write_text(summary + "\n")
    print(summary, file=sys.stderr)
