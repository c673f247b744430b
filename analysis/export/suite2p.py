"""suite2p output folder per plane (stat.npy, ops.npy, F.npy, ...) for suite2p's GUI and tools."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from analysis import __version__
from analysis.dims import COL, ROI, ROW, TIME
from analysis.io import atomic_path

log = logging.getLogger(__name__)


SUITE2P_FILES = (
    "stat",
    "F",
    "Fneu",
    "spks",
    "iscell",
    "ops",
    "db",
    "settings",
    "reg_outputs",
    "detect_outputs",
)


def compute_correlation_image(
    movie: Any,
    *,
    rows: slice = slice(None),
    cols: slice = slice(None),
    bad_frames: np.ndarray | None = None,
    batch_frames: int = 500,
) -> np.ndarray:
    """Local correlation image: each pixel's mean correlation with its 8 neighbours.

    Streams over the movie (``batch_frames`` frames at a time); this is the correlation
    map suite2p's GUI shows (``Vcorr``).

    Parameters
    ----------
    movie : array-like (time, row, col)
        Registered movie, e.g. a read-only memmap.
    rows, cols : slice
        Region to use (suite2p's ``yrange`` / ``xrange``, the valid registered area).
    bad_frames : numpy.ndarray of bool (time,), optional
        Frames to leave out.
    batch_frames : int

    Returns
    -------
    numpy.ndarray (row, col) float32
        Pearson correlations in [-1, 1] over the region; 0 where a pixel is constant.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> shared = rng.normal(size=(200, 1, 1))
    >>> movie = shared + 0.1 * rng.normal(size=(200, 4, 4))
    >>> bool(compute_correlation_image(movie).min() > 0.9)
    True
    """
    n_frames = movie.shape[0]
    keep = np.ones(n_frames, bool) if bad_frames is None else ~np.asarray(bad_frames, bool)
    offsets = ((0, 1), (1, 0), (1, 1), (1, -1))
    offset = None
    n = 0
    total = total_sq = None
    cross: list[np.ndarray] = []
    for start in range(0, n_frames, batch_frames):
        good = keep[start : start + batch_frames]
        x = np.asarray(movie[start : start + batch_frames], np.float64)[good][:, rows, cols]
        if not len(x):
            continue
        if offset is None:
            # subtract a per-pixel level first: sums of squares stay well conditioned
            offset = x.mean(axis=0)
            total, total_sq = np.zeros_like(offset), np.zeros_like(offset)
            cross = [np.zeros_like(_pair(offset[None], d)[0][0]) for d in offsets]
        x = x - offset
        n += len(x)
        total += x.sum(axis=0)
        total_sq += (x * x).sum(axis=0)
        for acc, d in zip(cross, offsets, strict=True):
            a, b = _pair(x, d)
            acc += (a * b).sum(axis=0)
    if offset is None:
        raise ValueError("compute_correlation_image: no good frames in the movie")
    mean = total / n
    var = np.maximum(total_sq / n - mean**2, 0.0)
    corr_sum = np.zeros_like(mean)
    count = np.zeros_like(mean)
    for acc, d in zip(cross, offsets, strict=True):
        (mean_a, mean_b), (var_a, var_b) = _pair(mean[None], d), _pair(var[None], d)
        denom = np.sqrt(var_a[0] * var_b[0])
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.where(denom > 0, (acc / n - mean_a[0] * mean_b[0]) / denom, 0.0)
        for target in _pair(corr_sum[None], d):
            target[0] += corr
        for target in _pair(count[None], d):
            target[0] += 1
    return (corr_sum / np.maximum(count, 1)).astype(np.float32)


def _pair(x: np.ndarray, offset: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Views of ``x`` (time, row, col) at pixel p and at its neighbour p + offset."""
    dr, dc = offset
    n_rows, n_cols = x.shape[1:]
    rows_a, rows_b = slice(0, n_rows - dr), slice(dr, n_rows)
    if dc >= 0:
        cols_a, cols_b = slice(0, n_cols - dc), slice(dc, n_cols)
    else:
        cols_a, cols_b = slice(-dc, n_cols), slice(0, n_cols + dc)
    return x[:, rows_a, cols_a], x[:, rows_b, cols_b]


def compute_suite2p_plane(
    masks: xr.DataArray,
    traces: xr.Dataset,
    registration: xr.Dataset,
    *,
    correlation_image: np.ndarray,
    fs_hz: float,
    n_planes: int,
    plane: int,
    tau_s: float,
    neuropil_coefficient: float,
    diameter_px: float,
    reg_file: str,
    save_path: str,
    data_path: str,
) -> dict[str, Any]:
    """The contents of a suite2p 1.1.0 plane folder for one session and plane.

    Parameters
    ----------
    masks : xarray.DataArray (roi, row, col)
        Tracked masks in this session's registered frame.
    traces : xarray.Dataset
        ``extract`` output with ``F``, ``Fneu``, ``spikes`` ``(roi, time)``.
    registration : xarray.Dataset
        ``register`` output.
    correlation_image : numpy.ndarray (row, col)
        :func:`compute_correlation_image` over ``valid_row_range`` x ``valid_col_range``.
    fs_hz : float
        Volume rate (suite2p's per-plane ``fs``), Hz.
    n_planes, plane : int
        Number of planes in the session, and this plane's index.
    tau_s : float
        Indicator decay time (suite2p's ``tau``), s.
    neuropil_coefficient : float
        The ``c`` of ``F - c * Fneu``.
    diameter_px : float
        Expected soma diameter (suite2p's ``diameter``), px.
    reg_file, save_path, data_path : str
        Registered movie, this plane folder, and the raw session folder (recorded in
        ``db``).

    Returns
    -------
    dict
        ``{name: value}`` for each of :data:`SUITE2P_FILES`: ``stat`` an object array of
        dicts, ``F``/``Fneu``/``spks`` float32 ``(roi, time)``, ``iscell`` ``(roi, 2)``,
        and the dicts ``ops``, ``db``, ``settings``, ``reg_outputs``, ``detect_outputs``.
    """
    ids = masks[ROI].to_numpy()
    if not np.array_equal(ids, traces[ROI].to_numpy()):
        raise ValueError(
            f"compute_suite2p_plane: mask roi ids {ids.tolist()} differ from the traces' "
            f"{traces[ROI].to_numpy().tolist()}; rerun extract."
        )
    weights = masks.transpose(ROI, ROW, COL).to_numpy()
    n_rows, n_cols = weights.shape[1:]
    keep = weights.reshape(len(ids), -1).max(axis=1) > 0
    if not keep.all():
        log.info("ROIs %s have empty masks in this session: left out", ids[~keep].tolist())
    stat = _suite2p_stat(ids[keep], weights[keep], diameter_px=diameter_px)
    F = traces["F"].transpose(ROI, TIME).to_numpy()[keep].astype(np.float32)
    Fneu = traces["Fneu"].transpose(ROI, TIME).to_numpy()[keep].astype(np.float32)
    spks = traces["spikes"].transpose(ROI, TIME).to_numpy()[keep].astype(np.float32)
    _add_signal_stats(stat, F, Fneu, neuropil_coefficient=neuropil_coefficient)
    row_range = [int(v) for v in np.ravel(registration.attrs["valid_row_range"])]
    col_range = [int(v) for v in np.ravel(registration.attrs["valid_col_range"])]
    crop = (slice(*row_range), slice(*col_range))
    expected = (row_range[1] - row_range[0], col_range[1] - col_range[0])
    if correlation_image.shape != expected:
        raise ValueError(
            f"compute_suite2p_plane: correlation image {correlation_image.shape} does not "
            f"cover the valid range {expected} (rows {row_range}, cols {col_range})"
        )
    settings, db = _suite2p_settings(
        fs_hz=fs_hz,
        tau_s=tau_s,
        diameter_px=diameter_px,
        neuropil_coefficient=neuropil_coefficient,
        data_path=data_path,
        save_path=save_path,
        reg_file=reg_file,
        n_planes=n_planes,
        plane=plane,
        shape=(int(n_rows), int(n_cols)),
        n_frames=int(traces.sizes[TIME]),
    )
    image = {
        name: registration[name].transpose(ROW, COL).to_numpy().astype(np.float32)
        for name in ("ref_image", "mean_image", "mean_image_enhanced", "max_image")
    }
    reg_outputs = _reg_outputs(registration, image, row_range=row_range, col_range=col_range)
    detect_outputs = {
        "Vcorr": np.asarray(correlation_image, np.float32),
        "max_proj": image["max_image"][crop],
        "diameter": np.array([diameter_px, diameter_px]),
    }
    return {
        "stat": stat,
        "F": F,
        "Fneu": Fneu,
        "spks": spks,
        "iscell": np.ones((len(stat), 2), np.float32),
        "ops": {**db, **settings, **reg_outputs, **detect_outputs},
        "db": db,
        "settings": settings,
        "reg_outputs": reg_outputs,
        "detect_outputs": detect_outputs,
    }


def _suite2p_stat(ids: np.ndarray, weights: np.ndarray, *, diameter_px: float) -> np.ndarray:
    """suite2p's ``stat``: one dict per ROI (pixels, weights, id) with suite2p's own shape
    statistics and overlaps (:func:`suite2p.detection.stats.roi_stats`)."""
    from suite2p.detection.stats import assign_overlaps, roi_stats

    n_rows, n_cols = weights.shape[1:]
    stats = []
    for roi_id, weight in zip(ids, weights, strict=True):
        ypix, xpix = np.nonzero(weight > 0)
        stats.append(
            {
                "ypix": ypix.astype(np.int32),
                "xpix": xpix.astype(np.int32),
                "lam": weight[ypix, xpix].astype(np.float32),
                "roi_id": int(roi_id),
            }
        )
    stat = np.array(stats, dtype=object)
    if len(stat):
        # npix_norm bounds open and no overlap limit: suite2p must not drop any ROI
        stat = roi_stats(
            stat,
            n_rows,
            n_cols,
            diameter=[diameter_px, diameter_px],
            max_overlap=None,
            npix_norm_min=-np.inf,
            npix_norm_max=np.inf,
        )
        stat = assign_overlaps(stat, n_rows, n_cols)
    if len(stat) != len(ids):
        raise RuntimeError("suite2p roi_stats dropped ROIs; the exported stat would misalign")
    return stat


def _add_signal_stats(
    stat: np.ndarray, F: np.ndarray, Fneu: np.ndarray, *, neuropil_coefficient: float
) -> None:
    """Set each ROI's ``snr``, ``skew`` and ``std`` of ``F - c * Fneu`` in ``stat``."""
    from scipy.stats import skew

    dF = F.astype(np.float64) - neuropil_coefficient * Fneu
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = 1 - 0.5 * np.nanvar(np.diff(dF, axis=1), axis=1) / np.nanvar(dF, axis=1)
    for k, entry in enumerate(stat):
        entry["snr"] = float(snr[k])
        entry["skew"] = float(skew(dF[k], nan_policy="omit"))
        entry["std"] = float(np.nanstd(dF[k]))


def _suite2p_settings(
    *,
    fs_hz: float,
    tau_s: float,
    diameter_px: float,
    neuropil_coefficient: float,
    data_path: str,
    save_path: str,
    reg_file: str,
    n_planes: int,
    plane: int,
    shape: tuple[int, int],
    n_frames: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """suite2p's ``settings`` and ``db`` of this plane: its defaults with our rate, tau,
    diameter, neuropil coefficient, paths and shape."""
    from suite2p.parameters import default_db, default_settings

    n_rows, n_cols = shape
    settings = default_settings()
    settings.update(
        fs=float(fs_hz),
        tau=float(tau_s),
        diameter=[diameter_px, diameter_px],
        torch_device="cpu",
    )
    settings["extraction"]["neuropil_coefficient"] = float(neuropil_coefficient)
    db = default_db()
    db.update(
        data_path=[data_path],
        save_path0=str(Path(save_path).parent.parent),
        save_folder=Path(save_path).parent.name,
        save_path=save_path,
        reg_file=reg_file,
        nplanes=int(n_planes),
        iplane=int(plane),
        nchannels=1,
        Ly=int(n_rows),
        Lx=int(n_cols),
        nframes=int(n_frames),
        exported_by=f"bci-dendrites {__version__} (analysis.export)",
    )
    return settings, db


def _reg_outputs(
    registration: xr.Dataset,
    image: Mapping[str, np.ndarray],
    *,
    row_range: list[int],
    col_range: list[int],
) -> dict[str, Any]:
    """suite2p's ``reg_outputs``: reference and mean images, rigid and nonrigid shifts,
    bad frames and the valid range."""
    return {
        "refImg": image["ref_image"],
        "meanImg": image["mean_image"],
        "meanImgE": image["mean_image_enhanced"],
        "yoff": registration["rigid_shift_row"].to_numpy(),
        "xoff": registration["rigid_shift_col"].to_numpy(),
        "corrXY": registration["phase_corr"].to_numpy(),
        "yoff1": registration["nonrigid_shift_row"].to_numpy(),
        "xoff1": registration["nonrigid_shift_col"].to_numpy(),
        "badframes": registration["bad_frame"].to_numpy().astype(bool),
        "yrange": row_range,
        "xrange": col_range,
        "bidiphase": 0,
    }


def write_suite2p_plane(contents: Mapping[str, Any], folder: str | Path) -> list[Path]:
    """Save :func:`compute_suite2p_plane` output as ``<folder>/<name>.npy`` files.

    Dicts are saved as suite2p saves them (a 0-d object array: ``np.load(...,
    allow_pickle=True).item()``). Returns the written paths.
    """
    missing = [name for name in SUITE2P_FILES if name not in contents]
    if missing:
        raise ValueError(f"write_suite2p_plane: missing {missing}")
    paths = []
    for name in SUITE2P_FILES:
        path = Path(folder) / f"{name}.npy"
        with atomic_path(path) as tmp, open(tmp, "wb") as file:
            np.save(file, contents[name], allow_pickle=True)
        paths.append(path)
    return paths
