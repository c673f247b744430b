"""The results folder: one path template per artifact.

Every file the workflow writes under ``results/`` (config key ``results``) has one template
here, relative to the results root, keyed ``<stage>.<artifact>``. The rules
(``workflow/rules/*.smk``), :mod:`analysis.validate`, the benchmarks and the tests build
their paths with :func:`path`, so the layout is written down once::

    >>> path("extract.traces", "results", subject="m01", session="day01", plane=0)
    'results/extract/m01/day01/plane0/traces.nc'
    >>> path("extract.traces", "results", subject="m01")  # the rest stay wildcards
    'results/extract/m01/{session}/plane{plane}/traces.nc'

A stage's folder has the stage's name; per-session artifacts sit in
``<stage>/<subject>/<session>/``, per-plane ones in a ``plane<k>/`` below it, cross-day
ones in ``<stage>/<subject>/``. Logs and benchmarks mirror the rules under ``logs/`` and
``benchmarks/`` and are not artifacts.
"""

from __future__ import annotations

import os
import string

_SESSION = "{subject}/{session}"
_PLANE = "{subject}/{session}/plane{plane}"

#: ``<stage>.<artifact>`` -> path template relative to the results root.
ARTIFACTS: dict[str, str] = {
    # ingest: the checked session
    "ingest.session": f"ingest/{_SESSION}/session.json",
    "ingest.bci_frames": f"ingest/{_SESSION}/bci_frames.tsv",
    "ingest.bci_meta": f"ingest/{_SESSION}/bci_meta.json",
    "ingest.targets": f"ingest/{_SESSION}/targets.json",
    # register: each plane read from the raw files, flagged and registered in place
    "register.movie": f"register/{_PLANE}/movie.bin",
    "register.header": f"register/{_PLANE}/movie.bin.json",
    "register.registration": f"register/{_PLANE}/registration.nc",
    "register.frames": f"register/{_PLANE}/frames.tsv",
    # align_days (per subject and plane)
    "align_days.transforms": "align_days/{subject}/plane{plane}/transforms.nc",
    # segment
    "segment.rois": f"segment/{_PLANE}/rois.nc",
    # track (per subject and plane; targets per session; soma-dendrite pairs per subject)
    "track.rois": "track/{subject}/plane{plane}/rois.nc",
    "track.assignments": "track/{subject}/plane{plane}/assignments.tsv",
    "track.targets": f"track/{_SESSION}/targets.tsv",
    "track.pairs": "track/{subject}/pairs.tsv",
    # extract
    "extract.traces": f"extract/{_PLANE}/traces.nc",
    "extract.events": f"extract/{_PLANE}/events.tsv",
    # bci
    "bci.trials": f"bci/{_SESSION}/trials.tsv",
    "bci.frames": f"bci/{_SESSION}/frames.tsv",
    "bci.aligned_start": f"bci/{_SESSION}/aligned_start.nc",
    "bci.aligned_reward": f"bci/{_SESSION}/aligned_reward.nc",
    "bci.aligned_failure": f"bci/{_SESSION}/aligned_failure.nc",
    "bci.replay": f"bci/{_SESSION}/replay.tsv",
    "bci.replay_agreement": f"bci/{_SESSION}/replay_agreement.tsv",
    # stats (cohort tables, one per name)
    "stats.table": "stats/{name}.tsv",
    "stats.summary": "stats/summary.txt",
    # figures
    "figures.paper": "figures/{name}.png",
    "figures.paper_svg": "figures/{name}.svg",
    "figures.qc": "figures/qc/{name}_{subject}.png",
    "figures.align_days": "figures/qc/align_days_{subject}_plane{plane}.png",
    # qc viewer
    "qc.page": "qc/{subject}.html",
    "qc.summary": "qc/{subject}.json",
    "qc.index": "qc/index.html",
    # export
    "export.nwb": "export/{subject}/{session}/sub-{subject}_ses-{session}_behavior+ophys.nwb",
    "export.inspection": f"export/{_SESSION}/nwbinspector.tsv",
    "export.suite2p": "export/{subject}/{session}/suite2p/plane{plane}/{name}.npy",
    # validation against the simulator's truth
    "validation.cohort": "validation/cohort",
    "validation.run_summary": "validation/run/results/stats/summary.txt",
    "validation.metrics": "validation/metrics.tsv",
    "validation.calibration": "validation/calibration.tsv",
    "validation.residual_size": "validation/residual_by_true_size.tsv",
    "validation.residual_size_figure": "validation/residual_by_true_size.png",
}


class _Open(dict):
    """Format mapping that leaves a missing field as its own ``{name}``."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fields(artifact: str) -> list[str]:
    """The wildcards of an artifact's template, e.g. ``['subject', 'session', 'plane']``."""
    return list(
        dict.fromkeys(f for _, f, _, _ in string.Formatter().parse(ARTIFACTS[artifact]) if f)
    )


def path(artifact: str, results: str | os.PathLike = "{results}", **wildcards: object) -> str:
    """Path of ``artifact`` under ``results``, with the given wildcards filled.

    Parameters
    ----------
    artifact : a key of :data:`ARTIFACTS`, e.g. ``"extract.traces"``.
    results : the results root (config key ``results``); left as ``{results}`` by default.
    **wildcards : values for the template's fields (``subject``, ``session``, ``plane``,
        ``name``); fields not given stay as ``{field}`` (Snakemake wildcards).

    Raises
    ------
    KeyError
        Unknown artifact, or a wildcard the template does not have.
    """
    if artifact not in ARTIFACTS:
        raise KeyError(f"unknown artifact {artifact!r}; known: {sorted(ARTIFACTS)}")
    unknown = set(wildcards) - set(fields(artifact))
    if unknown:
        raise KeyError(f"{artifact} has no wildcard {sorted(unknown)}; it has {fields(artifact)}")
    relative = ARTIFACTS[artifact].format_map(_Open({k: str(v) for k, v in wildcards.items()}))
    return f"{os.fspath(results)}/{relative}"
