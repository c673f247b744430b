# align_days: register each day's mean image to the reference day, per subject and plane.


rule align_days:
    input:
        registrations=lambda wc: [
            artifact("register.registration", subject=wc.subject, session=session, plane=wc.plane)
            for session in sessions_of(wc.subject)
        ],
    output:
        transforms=artifact("align_days.transforms"),
        overlay=report(
            artifact("figures.align_days"),
            caption="../report/align_days.rst",
            category="QC",
        ),
    params:
        settings=stage_settings("align_days"),
        sessions=lambda wc: sessions_of(wc.subject),
    log:
        f"{RESULTS}/logs/align_days/{{subject}}/plane{{plane}}.log",
    script:
        "../scripts/align_days.py"
