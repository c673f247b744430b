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
            f"{RESULTS}/track/{wc.subject}/plane{p}/rois.nc"
            for p in sorted(META[(wc.subject, wc.session)].plane_roles)
        ],
        assignments=lambda wc: [
            f"{RESULTS}/track/{wc.subject}/plane{p}/assignments.tsv"
            for p in sorted(META[(wc.subject, wc.session)].plane_roles)
        ],
        traces=lambda wc: [
            f"{RESULTS}/extract/{wc.subject}/{wc.session}/plane{p}/traces.nc"
            for p in sorted(META[(wc.subject, wc.session)].plane_roles)
        ],
        events=lambda wc: [
            f"{RESULTS}/extract/{wc.subject}/{wc.session}/plane{p}/events.tsv"
            for p in sorted(META[(wc.subject, wc.session)].plane_roles)
        ],
        registrations=lambda wc: [
            f"{RESULTS}/register/{wc.subject}/{wc.session}/plane{p}/registration.nc"
            for p in sorted(META[(wc.subject, wc.session)].plane_roles)
        ],
    output:
        nwb=f"{RESULTS}/export/{{subject}}/{{session}}/sub-{{subject}}_ses-{{session}}_behavior+ophys.nwb",
        inspection=f"{RESULTS}/export/{{subject}}/{{session}}/nwbinspector.tsv",
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
        movie=registered("movie.bin"),
        header=registered("movie.bin.json"),
        registration=registered("registration.nc"),
        rois=rules.track.output.rois,
        traces=rules.extract.output.traces,
    output:
        **{
            name: f"{RESULTS}/export/{{subject}}/{{session}}/suite2p/plane{{plane}}/{name}.npy"
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
        nwb=all_sessions("{results}/export/{subject}/{session}/sub-{subject}_ses-{session}_behavior+ophys.nwb"),
        suite2p=[
            f"{RESULTS}/export/{s}/{d}/suite2p/plane{p}/{name}.npy"
            for s in SUBJECTS
            for d in sessions_of(s)
            for p in sorted(META[(s, d)].plane_roles)
            for name in SUITE2P_FILES
        ],
