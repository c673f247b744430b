# figures: paper-style figures and per-subject QC, drawn from saved results only.

PAPER_FIGURES = [
    "fig1_learning",
    "fig2_sd_fits",
    "fig3_residuals_group_epoch",
    "fig4_outcome_residuals",
    "ed13_signed_separation",
    "fig5_conditions",
]
QC_FIGURES = ["registration", "cursor_replay", "pairing"]


rule figures_qc:
    input:
        registrations=lambda wc: [
            artifact("register.registration", subject=wc.subject, session=session, plane=plane)
            for session in sessions_of(wc.subject)
            for plane in planes_of(wc.subject)
        ],
        replays=subject_session_files("bci.replay"),
        pairs=rules.pair.output.pairs,
    output:
        **{
            name: report(
                artifact("figures.qc", name=name),
                caption=f"../report/qc_{name}.rst",
                category="QC",
                subcategory="{subject}",
            )
            for name in QC_FIGURES
        },
    params:
        names=lambda wc: [
            f"{session} plane{plane}" for session in sessions_of(wc.subject) for plane in planes_of(wc.subject)
        ],
        sessions=lambda wc: sessions_of(wc.subject),
    log:
        f"{RESULTS}/logs/figures_qc/{{subject}}.log",
    script:
        "../scripts/figures_qc.py"


rule figures:
    input:
        tables=rules.stats.output,
        qc=expand(artifact("figures.qc"), name=QC_FIGURES, subject=SUBJECTS),
    output:
        **{
            name: report(
                artifact("figures.paper", name=name),
                caption=f"../report/{name}.rst",
                category="Figures",
            )
            for name in PAPER_FIGURES
        },
        svg=expand(artifact("figures.paper_svg"), name=PAPER_FIGURES),
    log:
        f"{RESULTS}/logs/figures/figures.log",
    script:
        "../scripts/figures.py"
