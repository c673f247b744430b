# export: standard formats for sharing and for other tools, built from finished results.
# Not part of `rule all` (the analysis never reads them back and they copy traces and
# masks); run `snakemake --cores 2 export`.

from analysis.export import SUITE2P_FILES, find_subject_yaml


rule export_nwb:
    input:
        session=rules.ingest.output.session,
        session_yaml=lambda wc: str(Path(session_dir(wc)) / "session.yaml"),
        subject_yaml=lambda wc: find_subject_yaml(session_dir(wc)),
        bci_frames=rules.ingest.output.bci_frames,
        bci_meta=rules.ingest.output.bci_meta,
        trials=rules.bci.output.trials,
        task_error=rules.bci.output.frames,
        targets=rules.map_targets.output.targets,
        pairs=rules.pair.output.pairs,
        rois=lambda wc: [
            artifact("track.rois", subject=wc.subject, plane=p)
            for p in sorted(META[(wc.subject, wc.session)].plane_roles)
        ],
        assignments=lambda wc: [
            artifact("track.assignments", subject=wc.subject, plane=p)
            for p in sorted(META[(wc.subject, wc.session)].plane_roles)
        ],
        traces=lambda wc: [
            artifact("extract.traces", subject=wc.subject, session=wc.session, plane=p)
            for p in sorted(META[(wc.subject, wc.session)].plane_roles)
        ],
        events=lambda wc: [
            artifact("extract.events", subject=wc.subject, session=wc.session, plane=p)
            for p in sorted(META[(wc.subject, wc.session)].plane_roles)
        ],
        registrations=lambda wc: [
            artifact("register.registration", subject=wc.subject, session=wc.session, plane=p)
            for p in sorted(META[(wc.subject, wc.session)].plane_roles)
        ],
    output:
        nwb=artifact("export.nwb"),
        inspection=artifact("export.inspection"),
    params:
        settings=stage_settings("export"),
        planes=lambda wc: sorted(META[(wc.subject, wc.session)].plane_roles),
        soma_plane=lambda wc: plane_of_role(wc.subject, "soma"),
        dendrite_plane=lambda wc: plane_of_role(wc.subject, "dendrite"),
    resources:
        mem_mb=2000,
    log:
        f"{RESULTS}/logs/export_nwb/{{subject}}/{{session}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/export_nwb/{{subject}}/{{session}}.tsv"
    script:
        "../scripts/export_nwb.py"


rule export_suite2p:
    input:
        session=rules.ingest.output.session,
        movie=artifact("register.movie"),
        header=artifact("register.header"),
        registration=artifact("register.registration"),
        rois=rules.track.output.rois,
        traces=rules.extract.output.traces,
    output:
        **{
            name: artifact("export.suite2p", name=name)
            for name in SUITE2P_FILES
        },
    params:
        settings=stage_settings("export"),
        diameter_px=stage_settings("segment")["diameter_px"],
    resources:
        mem_mb=2000,
    log:
        f"{RESULTS}/logs/export_suite2p/{{subject}}/{{session}}/plane{{plane}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/export_suite2p/{{subject}}/{{session}}/plane{{plane}}.tsv"
    script:
        "../scripts/export_suite2p.py"


rule export:
    input:
        nwb=all_sessions("export.nwb"),
        suite2p=[
            artifact("export.suite2p", subject=s, session=d, plane=p, name=name)
            for s in SUBJECTS
            for d in sessions_of(s)
            for p in sorted(META[(s, d)].plane_roles)
            for name in SUITE2P_FILES
        ],
