# track: stable ROI ids across days; map online targets onto somata; pair somata with
# their tuft dendrites by bAP coupling.


rule track:
    input:
        rois=lambda wc: [
            artifact("segment.rois", subject=wc.subject, session=session, plane=wc.plane)
            for session in sessions_of(wc.subject)
        ],
        transforms=rules.align_days.output.transforms,
        # the online targets keep their somata tracked even if detected on one day only
        targets=lambda wc: bci_plane_session_files(wc, "ingest.targets"),
        bci_frames=lambda wc: bci_plane_session_files(wc, "ingest.bci_frames"),
        registrations=lambda wc: bci_plane_session_files(wc, "register.registration"),
    output:
        rois=artifact("track.rois"),
        assignments=artifact("track.assignments"),
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
        registration=lambda wc: artifact(
            "register.registration",
            subject=wc.subject,
            session=wc.session,
            plane=META[(wc.subject, wc.session)].bci_plane,
        ),
        rois=lambda wc: artifact("track.rois", subject=wc.subject, plane=plane_of_role(wc.subject, "soma")),
    output:
        targets=artifact("track.targets"),
    params:
        settings=stage_settings("track"),
    log:
        f"{RESULTS}/logs/map_targets/{{subject}}/{{session}}.log",
    script:
        "../scripts/map_targets.py"


rule pair:
    input:
        soma=lambda wc: [
            artifact("extract.traces", subject=wc.subject, session=session, plane=plane_of_role(wc.subject, "soma"))
            for session in sessions_of(wc.subject)
        ],
        dendrite=lambda wc: [
            artifact(
                "extract.traces", subject=wc.subject, session=session, plane=plane_of_role(wc.subject, "dendrite")
            )
            for session in sessions_of(wc.subject)
        ],
    output:
        pairs=artifact("track.pairs"),
    params:
        settings=stage_settings("track"),
    log:
        f"{RESULTS}/logs/pair/{{subject}}.log",
    script:
        "../scripts/pair.py"
