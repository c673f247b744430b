# align_days: register each day's mean image to the reference day, per subject and plane.


rule align_days:
    input:
        registrations=lambda wc: [
            f"{RESULTS}/register/{wc.subject}/{session}/plane{wc.plane}/registration.nc"
            for session in sessions_of(wc.subject)
        ],
    output:
        transforms=f"{RESULTS}/align_days/{{subject}}/plane{{plane}}/transforms.nc",
        overlay=report(
            f"{RESULTS}/figures/qc/align_days_{{subject}}_plane{{plane}}.png",
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
