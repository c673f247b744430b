# track: stable ROI ids across days; map online targets onto somata; pair somata with
# their tuft dendrites by bAP coupling.


rule track:
    input:
        rois=lambda wc: [
            f"{RESULTS}/segment/{wc.subject}/{session}/plane{wc.plane}/rois.nc"
            for session in sessions_of(wc.subject)
        ],
        transforms=rules.align_days.output.transforms,
        # the online targets keep their somata tracked even if detected on one day only
        targets=lambda wc: bci_plane_session_files(wc, "ingest", "targets.json"),
        bci_frames=lambda wc: bci_plane_session_files(wc, "ingest", "bci_frames.tsv"),
        registrations=lambda wc: bci_plane_session_files(wc, "register", f"plane{wc.plane}/registration.nc"),
    output:
        rois=f"{RESULTS}/track/{{subject}}/plane{{plane}}/rois.nc",
        assignments=f"{RESULTS}/track/{{subject}}/plane{{plane}}/assignments.tsv",
    params:
        settings=stage_settings("track"),
        sessions=lambda wc: sessions_of(wc.subject),
    log:
        f"{RESULTS}/logs/track/{{subject}}/plane{{plane}}.log",
    script:
        "../scripts/track.py"


rule map_targets:
    input:
        targets=rules.ingest.output.targets,
        session=rules.ingest.output.session,
        bci_frames=rules.ingest.output.bci_frames,
        registration=lambda wc: f"{RESULTS}/register/{wc.subject}/{wc.session}/plane{META[(wc.subject, wc.session)].bci_plane}/registration.nc",
        rois=lambda wc: f"{RESULTS}/track/{wc.subject}/plane{plane_of_role(wc.subject, 'soma')}/rois.nc",
    output:
        targets=f"{RESULTS}/track/{{subject}}/{{session}}/targets.tsv",
    params:
        settings=stage_settings("track"),
    log:
        f"{RESULTS}/logs/map_targets/{{subject}}/{{session}}.log",
    script:
        "../scripts/map_targets.py"


rule pair:
    input:
        soma=lambda wc: [
            f"{RESULTS}/extract/{wc.subject}/{session}/plane{plane_of_role(wc.subject, 'soma')}/traces.nc"
            for session in sessions_of(wc.subject)
        ],
        dendrite=lambda wc: [
            f"{RESULTS}/extract/{wc.subject}/{session}/plane{plane_of_role(wc.subject, 'dendrite')}/traces.nc"
            for session in sessions_of(wc.subject)
        ],
    output:
        pairs=f"{RESULTS}/track/{{subject}}/pairs.tsv",
    params:
        settings=stage_settings("track"),
    log:
        f"{RESULTS}/logs/pair/{{subject}}.log",
    script:
        "../scripts/pair.py"
