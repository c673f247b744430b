"""Check one raw session and record its metadata, frame counts and checksums."""

from pathlib import Path

from analysis import ingest, io
from analysis.config import rule_settings
from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="ingest", inputs=sm.input):
    folder = Path(sm.params.session_dir)
    session = ingest.inspect_session(
        folder,
        overrides=sm.params.overrides,
        settings=rule_settings("ingest", sm.params.settings, sm.config),
    )
    meta = session["meta"]
    record = {
        "subject": sm.wildcards.subject,
        "session": sm.wildcards.session,
        "session_dir": str(folder),
        "fs_hz": meta.fs_hz,
        "n_planes": meta.n_planes,
        "plane_roles": {str(k): v for k, v in meta.plane_roles.items()},
        "bci_plane": meta.bci_plane,
        "n_frames": session["n_frames"],
        "shape": list(session["shape"]),
        "imaging": session["imaging"].to_record(),
        "bci_log": session["bci_log"],
        "sha256": {str(p): io.sha256_file(p) for p in sm.input},
    }
    io.write_tsv(session["bci_frames"], sm.output.bci_frames)
    io.write_json(session["bci_meta"], sm.output.bci_meta)
    io.write_json({"targets": session["targets"]}, sm.output.targets)
    io.write_json(record, sm.output.session)
