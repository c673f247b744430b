"""NWB ophys: imaging planes, ROIs with their columns, traces, deconvolved events."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analysis.dims import COL, ROI, ROW, TIME
from analysis.export.settings import NWB_COMPRESSION, ExportSettings, PlaneResults, SessionResults
from analysis.vocabulary import NON_TARGET

if TYPE_CHECKING:
    from pynwb import NWBFile

log = logging.getLogger(__name__)


def _roi_ids(plane: PlaneResults) -> np.ndarray:
    ids = plane.masks[ROI].to_numpy().astype(np.int64)
    if not np.array_equal(ids, plane.traces[ROI].to_numpy()):
        raise ValueError(
            f"plane {plane.plane}: mask roi ids {ids.tolist()} differ from the traces' roi ids "
            f"{plane.traces[ROI].to_numpy().tolist()}; rerun extract for this session."
        )
    if len(plane.detected) != len(ids):
        raise ValueError(
            f"plane {plane.plane}: {len(plane.detected)} 'detected' flags for {len(ids)} ROIs."
        )
    return ids


def _target_columns(ids: np.ndarray, targets: pd.DataFrame) -> dict[str, np.ndarray]:
    mapped = targets.dropna(subset=["roi"])
    rois = mapped["roi"].to_numpy(np.int64)
    if len(set(rois)) != len(rois):
        raise ValueError(
            f"targets table maps several targets onto one ROI ({sorted(rois)}); rerun map_targets."
        )
    unknown = sorted(set(rois) - set(ids))
    if unknown:
        raise ValueError(
            f"targets table names soma ROI(s) {unknown} that the soma plane does not have; "
            "rerun map_targets after track."
        )
    group = np.full(len(ids), NON_TARGET, dtype=object)
    target_id = np.full(len(ids), -1, np.int64)
    iou = np.full(len(ids), np.nan)
    index = {roi: i for i, roi in enumerate(ids)}
    for row in mapped.itertuples(index=False):
        i = index[int(row.roi)]
        group[i], target_id[i], iou[i] = str(row.group), int(row.target_id), float(row.iou)
    return {"target_group": group, "target_id": target_id, "target_iou": iou}


def _paired(pairs: pd.DataFrame) -> pd.DataFrame:
    if pairs.empty:
        return pd.DataFrame({"soma_roi": [], "dendrite_roi": [], "corr": [], "p_value": []})
    table = pairs[pairs["paired"].astype(bool)]
    if table["dendrite_roi"].duplicated().any():
        raise ValueError("pairs table pairs one dendrite with several somata; rerun the pair rule.")
    return table


@dataclasses.dataclass(frozen=True)
class _Ragged:
    """A ragged ROI column: one list per ROI, stored as NWB data + index."""

    lists: list[list[Any]]
    dtype: type


def _roi_columns(plane: PlaneResults, results: SessionResults) -> list[tuple[str, str, Any]]:
    """(name, description, values or :class:`_Ragged`) for the plane's PlaneSegmentation:
    whether each ROI was detected in this session, then the soma or dendrite plane's own
    columns (:func:`_soma_roi_columns`, :func:`_dendrite_roi_columns`)."""
    ids = _roi_ids(plane)
    columns: list[tuple[str, str, Any]] = [
        (
            "detected",
            "True if segmentation found this ROI in this session; False if its mask is the "
            "consensus of other sessions mapped into this one (the neuron was silent or "
            "missed here).",
            np.asarray(plane.detected, bool),
        )
    ]
    if "n_sessions_detected" in plane.masks.coords:
        columns.append(
            (
                "n_sessions_detected",
                "Number of sessions in which segmentation found this tracked ROI.",
                plane.masks["n_sessions_detected"].to_numpy().astype(np.int64),
            )
        )
    pairs = _paired(results.pairs)
    if plane.plane == results.soma_plane:
        columns += _soma_roi_columns(ids, results, pairs)
    if plane.plane == results.dendrite_plane:
        columns += _dendrite_roi_columns(ids, results, pairs)
    return columns


def _soma_roi_columns(
    ids: np.ndarray, results: SessionResults, pairs: pd.DataFrame
) -> list[tuple[str, str, Any]]:
    """The soma plane's columns: BCI target group, id and IoU, and the paired dendrites."""
    columns: list[tuple[str, str, Any]] = []
    targets = _target_columns(ids, results.targets)
    columns += [
        (
            "target_group",
            "BCI target group: 'P+' (must raise activity), 'P-' (must lower it) or 'non-target'.",
            targets["target_group"],
        ),
        (
            "target_id",
            "Online target id from targets.json; -1: not a target.",
            targets["target_id"],
        ),
        (
            "target_iou",
            "IoU of the online target polygon with this ROI; NaN: not a target.",
            targets["target_iou"],
        ),
    ]
    unknown = sorted(set(pairs["soma_roi"].astype(np.int64)) - set(ids))
    if unknown:
        raise ValueError(
            f"pairs table names soma ROI(s) {unknown} that the soma plane does not have; "
            "rerun the pair rule."
        )
    by_soma = {roi: pairs[pairs["soma_roi"] == roi] for roi in ids}
    columns += [
        (
            "paired_dendrite_ids",
            f"Ids (in the Dendrite plane table) of the tuft dendrites paired with this "
            f"soma by bAP coupling (circular-shift shuffle test); plane "
            f"{results.dendrite_plane}.",
            _Ragged(
                [by_soma[roi]["dendrite_roi"].astype(np.int64).tolist() for roi in ids],
                np.int64,
            ),
        ),
        (
            "pairing_p_values",
            "Shuffle-test p-value of each pairing, in the order of paired_dendrite_ids.",
            _Ragged([by_soma[roi]["p_value"].astype(float).tolist() for roi in ids], float),
        ),
    ]
    return columns


def _dendrite_roi_columns(
    ids: np.ndarray, results: SessionResults, pairs: pd.DataFrame
) -> list[tuple[str, str, Any]]:
    """The dendrite plane's columns: the paired soma, the pairing's p-value and correlation,
    and the paired soma's target group."""
    columns: list[tuple[str, str, Any]] = []
    unknown = sorted(set(pairs["dendrite_roi"].astype(np.int64)) - set(ids))
    if unknown:
        raise ValueError(
            f"pairs table names dendrite ROI(s) {unknown} that the dendrite plane does not "
            "have; rerun the pair rule."
        )
    soma = np.full(len(ids), -1, np.int64)
    p_value = np.full(len(ids), np.nan)
    corr = np.full(len(ids), np.nan)
    index = {roi: i for i, roi in enumerate(ids)}
    for row in pairs.itertuples(index=False):
        i = index[int(row.dendrite_roi)]
        soma[i], p_value[i], corr[i] = int(row.soma_roi), float(row.p_value), float(row.corr)
    groups = {}
    if results.soma_plane is not None:
        soma_plane = next(p for p in results.planes if p.plane == results.soma_plane)
        soma_ids = _roi_ids(soma_plane)
        groups = dict(
            zip(
                soma_ids,
                _target_columns(soma_ids, results.targets)["target_group"],
                strict=True,
            )
        )
    columns += [
        (
            "paired_soma_id",
            f"Id (in the Soma plane table, plane {results.soma_plane}) of the soma this "
            "dendrite is paired with by bAP coupling; -1: unpaired.",
            soma,
        ),
        ("pairing_p_value", "Shuffle-test p-value of the pairing; NaN: unpaired.", p_value),
        (
            "pairing_corr",
            "Correlation of soma and dendrite event activity; NaN: unpaired.",
            corr,
        ),
        (
            "target_group",
            "BCI target group of the paired soma ('P+', 'P-'); 'non-target' when "
            "unpaired or paired with a non-target soma.",
            np.array([groups.get(s, NON_TARGET) for s in soma], dtype=object),
        ),
    ]
    return columns


def _plane_segmentation(plane: PlaneResults, imaging_plane: Any, results: SessionResults) -> Any:
    from hdmf.backends.hdf5 import H5DataIO
    from hdmf.common import VectorData, VectorIndex
    from pynwb.ophys import PlaneSegmentation

    masks = plane.masks.transpose(ROI, ROW, COL).to_numpy().astype(np.float32)
    columns: list[Any] = [
        VectorData(
            name="image_mask",
            description=(
                "ROI weights (roi, row, col) on the pixel grid of this session's registered "
                "movie (row = image row, col = image column; 0 outside the ROI)."
            ),
            data=H5DataIO(masks, **NWB_COMPRESSION),
        )
    ]
    for name, description, values in _roi_columns(plane, results):
        if isinstance(values, _Ragged):
            flat = np.array([v for row in values.lists for v in row], dtype=values.dtype)
            data = VectorData(name=name, description=description, data=flat)
            index = np.cumsum([len(row) for row in values.lists]).astype(np.uint32)
            columns += [data, VectorIndex(name=f"{name}_index", data=index, target=data)]
        else:
            columns.append(VectorData(name=name, description=description, data=values))
    description = (
        f"Tracked {plane.role} ROIs of plane {plane.plane}. Ids are the pipeline's ROI ids "
        "(stable across sessions). Masks are in this session's registered frame; "
        "results/track holds the same ROIs in the reference day's frame."
    )
    return PlaneSegmentation(
        name=plane.name,
        description=description,
        imaging_plane=imaging_plane,
        id=_roi_ids(plane).tolist(),
        columns=columns,
    )


_TRACES = (
    # container, variable, unit, description
    (
        "Fluorescence",
        "F",
        "a.u.",
        "F: weight-normalised mean of the ROI's pixels in the registered movie (int16 movie "
        "units, arbitrary).",
    ),
    (
        "Neuropil",
        "Fneu",
        "a.u.",
        "Fneu: mean of the ROI's neuropil annulus, excluding all ROI pixels (movie units).",
    ),
    (
        "DfOverF",
        "dff",
        "n.a.",
        "dF/F (dimensionless): (F - c * Fneu - F0) / F0 with F0 a running-percentile baseline "
        "(extract settings in the description of the ophys module).",
    ),
    (
        "Deconvolved",
        "spikes",
        "n.a.",
        "OASIS deconvolved activity (spike amplitudes in dF/F units) of dF/F.",
    ),
)


def add_ophys(nwbfile: NWBFile, results: SessionResults, settings: ExportSettings) -> None:
    """Add the ``ophys`` processing module: per plane an imaging plane, summary images, the
    ROI table (PlaneSegmentation), F, neuropil, dF/F and deconvolved traces, and events.

    A plane without ROIs gets its imaging plane and summary images only (logged).
    """
    from pynwb.ophys import DfOverF, Fluorescence, ImageSegmentation

    device = nwbfile.create_device(
        name="Microscope",
        description=f"two-photon microscope imaging {len(results.planes)} interleaved planes",
    )
    ophys = _ophys_module(nwbfile, results)
    with_rois = {p.plane for p in results.planes if p.masks.sizes[ROI]}
    for plane in results.planes:
        if not plane.masks.sizes[ROI]:
            log.warning("plane %d has no ROIs: no segmentation or traces written", plane.plane)
    segmentation = ImageSegmentation(name="ImageSegmentation")
    containers = {
        "Fluorescence": Fluorescence(name="Fluorescence"),
        "Neuropil": Fluorescence(name="Neuropil"),
        "DfOverF": DfOverF(name="DfOverF"),
        "Deconvolved": Fluorescence(name="Deconvolved"),
    }
    if with_rois:
        ophys.add(segmentation)
        for container in containers.values():
            ophys.add(container)
    channel = _optical_channel(settings)
    for plane in results.planes:
        imaging_plane = _imaging_plane(nwbfile, plane, device, channel, results, settings)
        ophys.add(_summary_images(plane))
        if plane.plane not in with_rois:
            continue
        table = _plane_segmentation(plane, imaging_plane, results)
        segmentation.add_plane_segmentation(table)
        _add_traces(containers, plane, table, fs_hz=float(results.fs_hz))
        events = _events_table(plane, table, fs_hz=float(results.fs_hz))
        if events is not None:
            ophys.add(events)


def _optical_channel(settings: ExportSettings) -> Any:
    from pynwb.ophys import OpticalChannel

    return OpticalChannel(
        name="GreenChannel",
        description=f"{settings.indicator} fluorescence",
        emission_lambda=settings.emission_lambda_nm,
    )


def _ophys_module(nwbfile: NWBFile, results: SessionResults) -> Any:
    """The ``ophys`` processing module, its description naming the extract settings."""
    extract_settings = {
        json.dumps(json.loads(p.traces.attrs.get("settings", "{}")), sort_keys=True)
        for p in results.planes
    }
    return nwbfile.create_processing_module(
        name="ophys",
        description=(
            "bci-dendrites processing: suite2p registration, tracked soma and dendrite ROIs, "
            "traces, dF/F, OASIS deconvolution, events. extract settings: "
            + "; ".join(sorted(extract_settings))
        ),
    )


def _imaging_plane(
    nwbfile: NWBFile,
    plane: PlaneResults,
    device: Any,
    channel: Any,
    results: SessionResults,
    settings: ExportSettings,
) -> Any:
    """The plane's ImagingPlane (role, rate, indicator, area, pixel size when known)."""
    role_text = {"soma": "layer 5 somata", "dendrite": "apical tuft dendrites"}
    grid = {}
    if settings.pixel_size_um is not None:
        grid = {
            "grid_spacing": [settings.pixel_size_um, settings.pixel_size_um],
            "grid_spacing_unit": "micrometers",
        }
    return nwbfile.create_imaging_plane(
        name=f"ImagingPlane{plane.plane}",
        optical_channel=channel,
        description=f"plane {plane.plane}: {role_text.get(plane.role, plane.role)}",
        device=device,
        excitation_lambda=settings.excitation_lambda_nm,
        imaging_rate=float(results.fs_hz),
        indicator=settings.indicator,
        location=settings.brain_area,
        **grid,
    )


def _summary_images(plane: PlaneResults) -> Any:
    """Mean, max, enhanced mean and reference images of the registered plane (row, col)."""
    from pynwb.base import Images
    from pynwb.image import GrayscaleImage

    reg = plane.registration
    return Images(
        name=f"SummaryImages{plane.name}",
        description=f"summary images of plane {plane.plane}, (row, col), registered",
        images=[
            GrayscaleImage(
                name=name,
                data=reg[var].transpose(ROW, COL).to_numpy().astype(np.float32),
                description=text,
            )
            for name, var, text in (
                ("mean", "mean_image", "mean of the registered frames"),
                ("max", "max_image", "max of the registered frames"),
                (
                    "mean_enhanced",
                    "mean_image_enhanced",
                    "high-pass filtered mean image (suite2p's meanImgE), scaled to [0, 1]",
                ),
                ("reference", "ref_image", "suite2p registration reference image"),
            )
        ],
    )


def _add_traces(containers: Mapping[str, Any], plane: PlaneResults, table: Any, *, fs_hz: float):
    """One RoiResponseSeries per trace kind (:data:`_TRACES`) of the plane's ROIs."""
    from hdmf.backends.hdf5 import H5DataIO

    region = table.create_roi_table_region(
        description=f"all ROIs of {plane.name}", region=list(range(len(table.id)))
    )
    time = plane.traces[TIME].to_numpy()
    for container, var, unit, description in _TRACES:
        data = plane.traces[var].transpose(TIME, ROI).to_numpy().astype(np.float32)
        containers[container].create_roi_response_series(
            name=plane.name,
            data=H5DataIO(data, **NWB_COMPRESSION),
            rois=region,
            unit=unit,
            rate=fs_hz,
            starting_time=float(time[0]) if len(time) else 0.0,
            description=description,
        )


def _events_table(plane: PlaneResults, table: Any, *, fs_hz: float) -> Any:
    from hdmf.common import DynamicTable, DynamicTableRegion, VectorData

    events = plane.events
    if events.empty:
        log.info("plane %d: no events, no events table", plane.plane)
        return None
    ids = _roi_ids(plane)
    index = {roi: i for i, roi in enumerate(ids)}
    unknown = sorted(set(events["roi"].astype(np.int64)) - set(index))
    if unknown:
        raise ValueError(
            f"plane {plane.plane}: events of ROI(s) {unknown} that the masks do not have; rerun "
            "extract."
        )
    columns = [
        DynamicTableRegion(
            name="roi",
            description=f"the event's ROI (row of {plane.name})",
            data=[index[int(r)] for r in events["roi"]],
            table=table,
        ),
        VectorData(
            name="frame",
            description="event onset volume index",
            data=events["frame"].to_numpy(np.int64),
        ),
        VectorData(
            name="peak_frame",
            description="volume index of the event's dF/F peak",
            data=events["peak_frame"].to_numpy(np.int64),
        ),
        VectorData(
            name="onset_time",
            description="event onset, seconds from session start",
            data=events["time_s"].to_numpy(float),
        ),
        VectorData(
            name="peak_time",
            description="dF/F peak, seconds from session start",
            data=events["peak_frame"].to_numpy(float) / fs_hz,
        ),
        VectorData(
            name="amplitude",
            description="peak dF/F minus the preceding minimum (dF/F units)",
            data=events["amplitude"].to_numpy(float),
        ),
    ]
    for name, text in (("peak_dff", "dF/F at the peak"), ("noise_sd", "robust SD of dF/F")):
        if name in events:
            columns.append(
                VectorData(name=name, description=text, data=events[name].to_numpy(float))
            )
    return DynamicTable(
        name=f"Events{plane.name}",
        description=f"calcium events detected on the dF/F of {plane.name}",
        id=list(range(len(events))),
        columns=columns,
    )
