"""Check one raw session and record its metadata, frame counts and checksums."""

from pathlib import Path

from analysis import ingest, io
from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="ingest", inputs=sm.input):
    folder = Path(sm.params.session_dir)
    meta = ingest.check_session_meta(
        {**io.read_yaml(folder / "session.yaml"), **sm.params.overrides},
        path=folder / "session.yaml",
    )
    tiffs = sorted(folder.glob("*.tif")) + sorted(folder.glob("*.tiff"))
    plan = ingest.plan_imaging_files(tiffs, n_planes=meta.n_planes, session_dir=folder)
    if plan["layout"] == "per_plane":
        pages = {plane: io.tiff_page_shapes(path) for plane, path in plan["files"].items()}
        n_frames, shape = ingest.check_plane_frames(
            {p: n for p, (n, _) in pages.items()},
            {p: s for p, (_, s) in pages.items()},
            source=str(folder),
        )
        files = {str(p): str(path) for p, path in plan["files"].items()}
    else:
        pages = {str(path): io.tiff_page_shapes(path) for path in plan["files"]}
        shapes = {path: s for path, (_, s) in pages.items()}
        if len(set(shapes.values())) != 1:
            raise ingest.IngestError(f"{folder}: TIFF files have different frame shapes {shapes}.")
        n_frames = ingest.check_interleaved_count(
            sum(n for n, _ in pages.values()), n_planes=meta.n_planes, source=str(folder)
        )
        shape = next(iter(shapes.values()))
        files = [str(p) for p in plan["files"]]
    bci_frames = ingest.check_bci_frames(
        io.read_raw_table(folder / "bci_frames.tsv"),
        n_frames=n_frames,
        path=folder / "bci_frames.tsv",
    )
    bci_meta = ingest.check_bci_meta(
        io.read_yaml(folder / "bci_meta.yaml"), path=folder / "bci_meta.yaml"
    )
    targets = ingest.check_targets(
        io.read_raw_json(folder / "targets.json"),
        shape=shape,
        n_planes=meta.n_planes,
        path=folder / "targets.json",
    )
    record = {
        "subject": sm.wildcards.subject,
        "session": sm.wildcards.session,
        "session_dir": str(folder),
        "fs_hz": meta.fs_hz,
        "n_planes": meta.n_planes,
        "plane_roles": {str(k): v for k, v in meta.plane_roles.items()},
        "bci_plane": meta.bci_plane,
        "n_frames": n_frames,
        "shape": list(shape),
        "layout": plan["layout"],
        "files": files,
        "sha256": {str(p): io.sha256_file(p) for p in sm.input},
    }
    io.write_tsv(bci_frames, sm.output.bci_frames)
    io.write_json(bci_meta, sm.output.bci_meta)
    io.write_json({"targets": targets}, sm.output.targets)
    io.write_json(record, sm.output.session)
