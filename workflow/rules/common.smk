# Config validation, the sessions table, wildcard constraints and input functions.

import dataclasses
import re
from pathlib import Path

from snakemake.utils import validate

from analysis import layout
from analysis.config import UNTRACKED, load_sessions, load_settings, session_overrides
from analysis.ingest import find_bci_log, read_session_meta
from analysis.readers import find_imaging
from analysis.vocabulary import PLANE_ROLES


validate(config, workflow.source_path("../schemas/config.schema.yaml"))
SETTINGS = load_settings(config)
RESULTS = config["results"]
SESSIONS = load_sessions(config["sessions"], raw_root=config["raw_root"])
validate(SESSIONS.drop(columns="session_dir"), workflow.source_path("../schemas/sessions.schema.yaml"))


def _session_meta(row):
    """session.yaml, sessions-table overrides and the imaging metadata (never frames)."""
    meta, _ = read_session_meta(
        row["session_dir"], overrides=session_overrides(row), settings=SETTINGS["ingest"]
    )
    return meta


META = {
    (row["subject"], row["session"]): _session_meta(row) for _, row in SESSIONS.iterrows()
}
SUBJECTS = sorted(SESSIONS["subject"].unique())


def sessions_of(subject):
    return sorted(SESSIONS.loc[SESSIONS["subject"] == subject, "session"])


def plane_of_role(subject, role):
    """The plane index holding ``role`` for a subject; must agree across its sessions."""
    planes = {
        session: next((p for p, r in META[(subject, session)].plane_roles.items() if r == role), None)
        for session in sessions_of(subject)
    }
    if len(set(planes.values())) != 1 or None in planes.values():
        raise ValueError(
            f"subject {subject}: the {role} plane differs between sessions ({planes}); "
            "fix plane_roles in the sessions' session.yaml."
        )
    return next(iter(planes.values()))


def planes_of(subject):
    """The planes of a subject's sessions; must be the same in every session (register
    runs all planes of a session in one job)."""
    first, *others = sessions_of(subject)
    planes = sorted(META[(subject, first)].plane_roles)
    for session in others:
        if sorted(META[(subject, session)].plane_roles) != planes:
            raise ValueError(
                f"subject {subject}, session {session}: planes "
                f"{sorted(META[(subject, session)].plane_roles)} differ from its other "
                f"sessions' {planes}; fix n_planes and plane_roles in the sessions' "
                "session.yaml (or split the subject)."
            )
    return planes


def session_dir(wildcards):
    row = SESSIONS[(SESSIONS["subject"] == wildcards.subject) & (SESSIONS["session"] == wildcards.session)]
    return row["session_dir"].iloc[0]


def stage_settings(section):
    """A section's settings as the params of a rule, without the fields that do not change
    its outputs (analysis.config.UNTRACKED): changing those reruns nothing."""
    settings = dataclasses.asdict(SETTINGS[section])
    return {k: v for k, v in settings.items() if k not in UNTRACKED.get(section, ())}


def artifact(key, **wildcards):
    """Path of a results artifact (analysis.layout.ARTIFACTS); wildcards not given stay open,
    wildcards the artifact does not have are ignored."""
    fields = layout.fields(key)
    return layout.path(key, RESULTS, **{k: v for k, v in wildcards.items() if k in fields})


def all_sessions(key):
    """An artifact of every (subject, session)."""
    return [artifact(key, subject=s, session=d) for s in SUBJECTS for d in sessions_of(s)]


def raw_session_files(wildcards):
    """Raw inputs of a session: imaging files of any reader (TIFF, .sbx + its .mat, HDF5,
    NWB; analysis.readers.find_imaging), and a BCI log that is bci_frames.tsv, one
    CLOOSE .mat or the NWB imaging file itself (analysis.ingest.find_bci_log)."""
    folder = Path(session_dir(wildcards))
    bci_log = find_bci_log(folder)
    meta = folder / "bci_meta.yaml"
    # next to a .mat or NWB log, bci_meta.yaml may be absent (the rule then says what it lacks)
    metas = [meta] if bci_log.suffix == ".tsv" or meta.exists() else []
    fixed = [folder / "session.yaml", bci_log, *metas, folder / "targets.json"]
    _, imaging = find_imaging(folder)
    return [str(p) for p in dict.fromkeys(fixed + imaging)]  # an NWB log is the imaging


def bci_plane_session_files(wildcards, key):
    """An artifact of each session of a subject whose BCI plane is ``wildcards.plane``."""
    subject, plane = wildcards.subject, int(wildcards.plane)
    return [
        artifact(key, subject=subject, session=session, plane=plane)
        for session in sessions_of(subject)
        if META[(subject, session)].bci_plane == plane
    ]


def role_plane_files(key, role):
    """Input function: an artifact of the ``role`` plane of every (subject, session)."""
    return lambda wc: [
        artifact(key, subject=s, session=d, plane=plane_of_role(s, role))
        for s in SUBJECTS
        for d in sessions_of(s)
    ]


def subject_session_plane_files(key):
    """Input function: an artifact of every session's soma then dendrite plane of a subject."""
    return lambda wc: [
        artifact(key, subject=wc.subject, session=session, plane=plane_of_role(wc.subject, role))
        for session in sessions_of(wc.subject)
        for role in PLANE_ROLES
    ]


def subject_session_files(key):
    """Input function: an artifact of every session of a subject."""
    return lambda wc: [artifact(key, subject=wc.subject, session=session) for session in sessions_of(wc.subject)]


def subject_plane_files(key):
    """Input function: the soma then the dendrite plane's artifact of a subject."""
    return lambda wc: [artifact(key, subject=wc.subject, plane=plane_of_role(wc.subject, role)) for role in PLANE_ROLES]


wildcard_constraints:
    subject=r"[A-Za-z0-9_.-]+",
    session=r"[A-Za-z0-9_.-]+",
    plane=r"\d+",


def validation_preset_settings(wildcards):
    """The simulator settings of the validation preset: a change to the preset's values
    (not only to its name) re-simulates the cohort."""
    from analysis.simulate import settings_for

    cohort = SETTINGS["validate"]
    return settings_for(
        cohort.preset, n_subjects=cohort.n_subjects, n_days=cohort.n_days, n_frames=cohort.n_frames
    ).to_dict()
