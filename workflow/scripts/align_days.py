"""Align every session's mean image of one subject and plane to the reference day."""

import xarray as xr
from matplotlib.figure import Figure

from analysis import io
from analysis.align_days import AlignDaysSettings, align_days, compute_overlay
from analysis.dims import SESSION
from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="align_days", inputs=sm.input):
    settings = AlignDaysSettings.from_mapping(sm.params.settings)
    mean_images = xr.concat(
        [io.read_netcdf(p)["mean_image"] for p in sm.input.registrations],
        dim=xr.DataArray(list(sm.params.sessions), dims=SESSION, name=SESSION),
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
