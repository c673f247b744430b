"""Align every session's mean image of one subject and plane to the reference day."""

from matplotlib.figure import Figure

from analysis import io
from analysis.align_days import AlignDaysSettings, align_days, compute_overlay, stack_sessions
from analysis.dims import SESSION
from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="align_days", inputs=sm.input):
    settings = AlignDaysSettings.from_mapping(sm.params.settings)
    mean_images = stack_sessions(
        {
            session: io.read_netcdf(path)["mean_image"]
            for session, path in zip(sm.params.sessions, sm.input.registrations, strict=True)
        }
    )
    transforms = align_days(mean_images, settings=settings)
    io.write_netcdf(
        transforms, sm.output.transforms, stage="align_days", settings=settings, inputs=sm.input
    )
    reference = transforms["aligned"].sel({SESSION: transforms.attrs["reference_session"]})
    fig = Figure(figsize=(3.0 * len(sm.params.sessions), 3.3), layout="constrained")
    for ax, session in zip(
        fig.subplots(1, len(sm.params.sessions), squeeze=False)[0], sm.params.sessions, strict=True
    ):
        ax.imshow(compute_overlay(reference, transforms["aligned"].sel({SESSION: session})))
        ax.set_title(
            f"{session}: r = {float(transforms['corr'].sel({SESSION: session})):.2f}",
            fontsize="medium",
        )
        ax.set_axis_off()
    with io.atomic_path(sm.output.overlay) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
