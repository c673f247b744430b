"""Within-session motion correction (stage ``register``) with suite2p 1.1.0.

Contract
--------
Input: one plane of one session, ``raw`` ``(time, row, col)`` int16 and a writable int16
array ``out`` of the same shape that receives the registered frames; ``out`` may be
``raw`` itself, registered in place (the register rule converts the raw plane into its
output movie and registers it there, as suite2p does, so a session writes one movie).
:func:`register_movie` builds the reference image from ``reference_frames`` sampled
frames, then streams the movie in batches of ``batch_size_frames`` through suite2p's
``registration_wrapper`` (rigid phase
correlation, nonrigid block phase correlation with subpixel upsampling) and then makes one
more streaming pass over ``out`` for the summary images and per-frame quality. The whole
movie is never in memory. Two of suite2p's inner kernels (the whitened phase correlation
and the rigid edge taper) are swapped for equivalent ones that spend about 40% less CPU on
registration; see :mod:`analysis.suite2p_kernels`.

Output: an :class:`xarray.Dataset` with ``time`` (s) and integer ``frame`` coordinates:

- ``shift_row(time)``, ``shift_col(time)`` float32, px: total per-frame rigid shift,
  suite2p's integer rigid offset plus the mean of the frame's nonrigid block offsets
  (the subpixel residual; 0 when ``nonrigid`` is off).
- ``rigid_shift_row(time)``, ``rigid_shift_col(time)`` int32, px: suite2p's integer
  rigid offsets alone.
- ``nonrigid_shift_row(time, block)``, ``nonrigid_shift_col(time, block)`` float32, px:
  per-block residual offsets applied after the rigid offset; ``block`` carries the block
  centre coordinates ``block_row``, ``block_col`` (px, pixel-centre convention: a block
  spanning rows 0..63 has centre 31.5). Zero blocks when ``nonrigid`` is off.
- ``phase_corr(time)``: suite2p's rigid phase-correlation peak (unnormalised).
- ``corr_ref(time)``: Pearson correlation of each registered frame with the reference
  image inside the valid (uncropped) region.
- ``bad_frame(time)`` bool: suite2p's outlier test (``bad_frame_threshold``, its
  ``th_badframes``; also frames whose rigid shift reaches 95% of the allowed maximum) OR
  ``corr_ref < bad_frame_corr_fraction * median(corr_ref)``.
- ``ref_image``, ``mean_image``, ``max_image``, ``mean_image_enhanced`` ``(row, col)``
  float32 (the mean/max over the registered frames written to ``out``; the enhanced image
  is suite2p's high-pass ``highpass_mean_image``, scaled to [0, 1]).
- attrs ``valid_row_range``, ``valid_col_range`` ([start, stop) px, the region never
  wrapped by rigid shifts of good frames), ``fs_hz``.

Sign convention
---------------
A shift is the displacement of the raw frame's content relative to the reference:
``raw(r, c) = ref(r - shift_row, c - shift_col)``. Positive ``shift_row`` means the
content moved down (to larger rows), positive ``shift_col`` to the right. The registered
frame is ``out(r, c) = raw(r + shift_row, c + shift_col)``. This is suite2p's
``yoff``/``xoff`` (and ``yoff1``/``xoff1``) convention unchanged. Shifts are relative to
the session's reference image, which suite2p builds from the best-correlated frames, so
they carry an arbitrary per-session constant.

Rigid shifts are applied by suite2p as circular integer rolls; rows/cols outside
``valid_row_range``/``valid_col_range`` can hold wrapped content and should be excluded
from segmentation.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from analysis import suite2p_kernels
from analysis.dims import COL, FRAME, ROW, TIME
from analysis.runlog import Progress
from analysis.settings import StageSettings, check_device, require, torch_device

logger = logging.getLogger(__name__)

BLOCK = "block"


@dataclasses.dataclass(frozen=True)
class RegisterSettings(StageSettings):
    """Settings of the ``register`` stage (config section ``register``).

    Attributes
    ----------
    nonrigid : bool
        Run suite2p's nonrigid (block-wise) step after the rigid step. It also supplies
        the subpixel part of ``shift_row``/``shift_col``.
    block_size_px : tuple of int
        Nonrigid block size (rows, cols), px. (64, 64) gives 3 x 3 overlapping blocks on a
        128-px field of view and still resolves 512-px fields of view. Reduced (with a
        warning) to half the frame side where it is not smaller than the frame, because suite2p
        needs at least two blocks per axis.
    max_shift_fraction : float
        Largest rigid shift, as a fraction of the smaller frame side (suite2p
        ``maxregshift``), in (0, 0.5].
    max_nonrigid_shift_px : int
        Largest nonrigid block shift beyond the rigid shift, px (suite2p ``maxregshiftNR``).
    batch_size_frames : int
        Frames per streamed registration batch (suite2p ``batch_size``); bounds memory:
        suite2p's rigid + nonrigid step holds about 6 MB per 256 x 256 frame of a batch
        (25 frames: ~150 MB; 100: ~600 MB) at about the same frames/s.
    reference_frames : int
        Frames sampled evenly through the movie to build the reference (``nimg_init``).
    reference_batch_frames : int
        Batch size of suite2p's reference building (its ``batch_size`` there). It changes
        the reference: suite2p averages the frames best correlated within the last batch.
    smooth_sigma_px : float
        Gaussian smoothing of the reference before phase correlation, px.
    snr_threshold : float
        Phase-correlation SNR below which a block's correlation map is smoothed with its
        neighbours' (suite2p ``snr_thresh``); >= 1.
    bad_frame_threshold : float
        suite2p ``th_badframes``: larger values flag fewer frames as motion outliers.
    bad_frame_corr_fraction : float
        A frame is also bad when its ``corr_ref`` is below this fraction of the session's
        median ``corr_ref``; in [0, 1) (0 disables this test).
    two_step : bool
        suite2p ``two_step_registration``: rebuild the reference from registered frames
        and register again.
    device : str
        torch device for suite2p: "cpu", "cuda", "cuda:<n>" or "mps"; a GPU the job's
        machine lacks stops the job with a ConfigError.
    keep_movie : bool
        Keep the registered movie (``register/.../movie.bin``, the size of the raw plane,
        the largest result) after the run. False marks it temporary: Snakemake deletes it
        once segment and extract have read it (QC reads ``registration.nc`` only), and a
        later job that needs it (``export_suite2p``, a rerun of extract) registers again.
        Not passed to the register job, so switching it reruns nothing.
    """

    section: ClassVar[str] = "register"

    nonrigid: bool = True
    block_size_px: tuple[int, int] = (64, 64)
    max_shift_fraction: float = 0.1
    max_nonrigid_shift_px: int = 5
    batch_size_frames: int = 25
    reference_frames: int = 300
    reference_batch_frames: int = 100
    smooth_sigma_px: float = 1.15
    snr_threshold: float = 1.2
    bad_frame_threshold: float = 1.0
    bad_frame_corr_fraction: float = 0.5
    two_step: bool = False
    device: str = "cpu"
    keep_movie: bool = True

    def __post_init__(self) -> None:
        require(
            len(self.block_size_px) == 2 and all(b >= 16 for b in self.block_size_px),
            f"register.block_size_px must be two ints >= 16, got {self.block_size_px}",
        )
        require(
            0 < self.max_shift_fraction <= 0.5,
            f"register.max_shift_fraction must be in (0, 0.5], got {self.max_shift_fraction}",
        )
        require(
            self.max_nonrigid_shift_px >= 1,
            f"register.max_nonrigid_shift_px must be >= 1, got {self.max_nonrigid_shift_px}",
        )
        require(
            self.batch_size_frames >= 1,
            f"register.batch_size_frames must be >= 1, got {self.batch_size_frames}",
        )
        require(
            self.reference_batch_frames >= 1,
            f"register.reference_batch_frames must be >= 1, got {self.reference_batch_frames}",
        )
        require(
            self.reference_frames >= 2,
            f"register.reference_frames must be >= 2, got {self.reference_frames}",
        )
        require(
            self.smooth_sigma_px >= 0,
            f"register.smooth_sigma_px must be >= 0, got {self.smooth_sigma_px}",
        )
        require(
            self.snr_threshold >= 1.0,
            f"register.snr_threshold must be >= 1, got {self.snr_threshold}",
        )
        require(
            self.bad_frame_threshold > 0,
            f"register.bad_frame_threshold must be > 0, got {self.bad_frame_threshold}",
        )
        require(
            0 <= self.bad_frame_corr_fraction < 1,
            "register.bad_frame_corr_fraction must be in [0, 1), got "
            f"{self.bad_frame_corr_fraction}",
        )
        check_device(self.device, "register.device")


class _Frames:
    """Adapter that lets suite2p stream an array-like (e.g. ``np.memmap``).

    suite2p tests its file arguments with ``not f_raw``, which fails on numpy arrays;
    this wrapper is always truthy and hands out writable in-memory copies of each batch
    (suite2p's ``BinaryFile`` interface: ``shape``, slicing reads and writes). Writes
    count towards ``progress`` when given.
    """

    def __init__(self, array: Any, progress: Progress | None = None) -> None:
        self._array = array
        self.shape = tuple(array.shape)
        self.progress = progress

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.array(self._array[index], dtype=np.int16)

    def __setitem__(self, index: Any, frames: np.ndarray) -> None:
        self._array[index] = frames
        if self.progress is not None:
            self.progress.update(len(frames))


def _block_size(settings: RegisterSettings, frame_shape: tuple[int, int]) -> tuple[int, int]:
    """Block size smaller than the frame, so suite2p makes >= 2 blocks per axis (it fails
    on an axis with one block)."""
    size = tuple(
        b if b < n else n // 2 for b, n in zip(settings.block_size_px, frame_shape, strict=True)
    )
    if size != tuple(settings.block_size_px):
        logger.warning(
            "block_size_px %s is not smaller than the %s px frames; using %s",
            settings.block_size_px,
            frame_shape,
            size,
        )
    return size


def _suite2p_settings(settings: RegisterSettings, block_size: tuple[int, int]) -> dict:
    """suite2p's registration defaults with our keys set one by one (merge is shallow)."""
    from suite2p.parameters import default_settings

    reg = default_settings()["registration"]
    reg["nonrigid"] = settings.nonrigid
    reg["block_size"] = list(block_size)
    reg["maxregshift"] = settings.max_shift_fraction
    reg["maxregshiftNR"] = settings.max_nonrigid_shift_px
    reg["batch_size"] = settings.batch_size_frames
    reg["nimg_init"] = settings.reference_frames
    reg["smooth_sigma"] = settings.smooth_sigma_px
    reg["snr_thresh"] = settings.snr_threshold
    reg["th_badframes"] = settings.bad_frame_threshold
    reg["two_step_registration"] = settings.two_step
    reg["do_bidiphase"] = False
    reg["reg_tif"] = False
    reg["reg_tif_chan2"] = False
    return reg


def _check_movies(raw: Any, out: Any) -> None:
    for name, arr in (("raw", raw), ("out", out)):
        if not hasattr(arr, "shape") or not hasattr(arr, "dtype"):
            raise TypeError(f"register_movie: {name} must be an array-like with shape and dtype")
        if len(arr.shape) != 3:
            raise ValueError(
                f"register_movie: {name} must be 3-D (time, row, col), got shape {arr.shape}"
            )
        if np.dtype(arr.dtype) != np.int16:
            raise ValueError(
                f"register_movie: {name} must be int16 (the ingest movie format), got {arr.dtype}"
            )
    if tuple(raw.shape) != tuple(out.shape):
        raise ValueError(
            f"register_movie: out shape {tuple(out.shape)} must equal raw shape {tuple(raw.shape)}"
        )
    if raw.shape[0] < 3:
        raise ValueError(f"register_movie: need at least 3 frames, got {raw.shape[0]}")
    if min(raw.shape[1:]) < 16:
        raise ValueError(f"register_movie: frames must be at least 16 x 16 px, got {raw.shape[1:]}")
    in_place = raw is out
    if not in_place and isinstance(raw, np.ndarray) and np.shares_memory(raw, out):
        raise ValueError(
            "register_movie: out must be raw itself (in place) or not share memory with it"
        )


def _summarise_registered(
    out: Any, ref: np.ndarray, *, rows: slice, cols: slice, batch: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stream over registered frames: mean and max images, per-frame Pearson r with ``ref``."""
    n_frames = out.shape[0]
    progress = Progress(logger, "summary images", n_frames)
    total = np.zeros(ref.shape, np.float64)
    peak = np.full(ref.shape, -np.inf, np.float32)
    corr = np.empty(n_frames, np.float32)
    ref_valid = ref[rows, cols].astype(np.float64).ravel()
    ref_valid -= ref_valid.mean()
    ref_norm = np.linalg.norm(ref_valid)
    for start in range(0, n_frames, batch):
        frames = np.asarray(out[start : start + batch], dtype=np.float32)
        total += frames.sum(axis=0, dtype=np.float64)
        np.maximum(peak, frames.max(axis=0), out=peak)
        valid = frames[:, rows, cols].reshape(len(frames), -1).astype(np.float64)
        valid -= valid.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(valid, axis=1) * ref_norm
        # a constant frame has no defined correlation: report 0 so it is flagged bad
        corr[start : start + len(frames)] = np.where(norms > 0, valid @ ref_valid / norms, 0.0)
        progress.update(len(frames))
    return (total / n_frames).astype(np.float32), peak, corr


def _block_centres(blocks: list) -> tuple[np.ndarray, np.ndarray]:
    yblock, xblock = blocks[0], blocks[1]
    rows = np.array([(b[0] + b[1] - 1) / 2 for b in yblock], np.float32)
    cols = np.array([(b[0] + b[1] - 1) / 2 for b in xblock], np.float32)
    return rows, cols


def register_movie(
    raw: Any, out: Any, *, fs_hz: float, settings: RegisterSettings, threads: int | None = None
) -> xr.Dataset:
    """Register a movie to its own reference image with suite2p (rigid + nonrigid).

    Parameters
    ----------
    raw : array-like, (time, row, col), int16
        Raw movie of one plane; read in batches, never modified unless it is ``out``.
    out : array-like, (time, row, col), int16
        Writable array of the same shape (e.g. from ``analysis.io.create_movie``) that
        receives the registered frames; ``out is raw`` registers in place.
    fs_hz : float
        Frame (volume) rate, Hz; sets the ``time`` coordinate (s).
    settings : RegisterSettings
        Stage settings.
    threads : int, optional
        CPU threads for torch (the rule's ``threads``); default: torch's (all cores).

    Returns
    -------
    xarray.Dataset
        Shifts (px), per-frame quality and summary images; see the module docstring for
        every variable and the sign convention
        ``raw(r, c) = ref(r - shift_row, c - shift_col)``.

    Raises
    ------
    ValueError
        If the movies are not 3-D int16 of equal shape, share memory without being the
        same object, have fewer than 3 frames, or ``fs_hz`` is not positive.

    References
    ----------
    Pachitariu et al. (2017) Suite2p, bioRxiv doi:10.1101/061507.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> raw = rng.poisson(100, (20, 64, 64)).astype(np.int16)
    >>> out = np.zeros_like(raw)
    >>> ds = register_movie(raw, out, fs_hz=30.0, settings=RegisterSettings())
    >>> ds.shift_row.dims
    ('time',)
    """
    import torch
    from suite2p.registration import register as s2p_register

    if threads is not None:
        # after importing suite2p: its numba import resets torch's OpenMP thread count
        torch.set_num_threads(threads)
    suite2p_kernels.install()
    _check_movies(raw, out)
    if not (np.isfinite(fs_hz) and fs_hz > 0):
        raise ValueError(f"register_movie: fs_hz must be a positive number, got {fs_hz}")
    n_frames, n_rows, n_cols = raw.shape
    logger.info("registering %d frames of %d x %d px", n_frames, n_rows, n_cols)

    block_size = _block_size(settings, (n_rows, n_cols))
    s2p_settings = _suite2p_settings(settings, block_size)
    device = torch_device(settings.device, "register.device")
    # the reference as registration_wrapper builds it (same frames), in its own batch size
    # so that the streaming batch can be small without changing the reference
    sample = np.linspace(0, n_frames, 1 + min(settings.reference_frames, n_frames), dtype=int)
    ref_image = s2p_register.compute_reference(
        _Frames(raw)[sample[:-1]],
        settings={**s2p_settings, "batch_size": settings.reference_batch_frames},
        device=device,
    )
    reg = s2p_register.registration_wrapper(
        # two-step registration writes every frame twice
        _Frames(out, Progress(logger, "registration", n_frames * (1 + settings.two_step))),
        f_raw=None if raw is out else _Frames(raw),
        refImg=ref_image,
        settings=s2p_settings,
        device=device,
    )

    rigid_row = np.asarray(reg["yoff"]).astype(np.int32)
    rigid_col = np.asarray(reg["xoff"]).astype(np.int32)
    if settings.nonrigid:
        nr_row = np.asarray(reg["yoff1"], np.float32)
        nr_col = np.asarray(reg["xoff1"], np.float32)
        blocks = s2p_register.nonrigid.make_blocks(Ly=n_rows, Lx=n_cols, block_size=block_size)
        block_row, block_col = _block_centres(blocks)
    else:
        nr_row = np.zeros((n_frames, 0), np.float32)
        nr_col = np.zeros((n_frames, 0), np.float32)
        block_row = block_col = np.zeros(0, np.float32)
    shift_row = rigid_row + (nr_row.mean(axis=1) if nr_row.shape[1] else 0.0)
    shift_col = rigid_col + (nr_col.mean(axis=1) if nr_col.shape[1] else 0.0)

    ref = np.asarray(reg["refImg"], np.float32)
    row_range, col_range = list(reg["yrange"]), list(reg["xrange"])
    # all frames may be flagged when motion is huge: fall back to the whole frame
    if row_range[1] - row_range[0] < 2 or col_range[1] - col_range[0] < 2:
        row_range, col_range = [0, n_rows], [0, n_cols]
    mean_image, max_image, corr_ref = _summarise_registered(
        out,
        ref,
        rows=slice(*row_range),
        cols=slice(*col_range),
        batch=settings.batch_size_frames,
    )
    bad = np.asarray(reg["badframes"], bool) | (
        corr_ref < settings.bad_frame_corr_fraction * np.median(corr_ref)
    )
    logger.info(
        "registration done: median |shift| %.2f px, %d bad frames, median corr_ref %.3f",
        float(np.median(np.hypot(shift_row, shift_col))),
        int(bad.sum()),
        float(np.median(corr_ref)),
    )

    return _registration_dataset(
        reg,
        fs_hz=fs_hz,
        shape=(n_rows, n_cols),
        shifts=(shift_row, shift_col, rigid_row, rigid_col, nr_row, nr_col),
        blocks=(block_row, block_col),
        images=(ref, mean_image, max_image),
        corr_ref=corr_ref,
        bad=bad,
        valid=(row_range, col_range),
    )


def _registration_dataset(
    reg: dict[str, Any],
    *,
    fs_hz: float,
    shape: tuple[int, int],
    shifts: tuple[np.ndarray, ...],
    blocks: tuple[np.ndarray, np.ndarray],
    images: tuple[np.ndarray, np.ndarray, np.ndarray],
    corr_ref: np.ndarray,
    bad: np.ndarray,
    valid: tuple[list[int], list[int]],
) -> xr.Dataset:
    """The register stage's output Dataset (layout in :func:`register_movie`)."""
    from suite2p.registration.utils import highpass_mean_image

    shift_row, shift_col, rigid_row, rigid_col, nr_row, nr_col = shifts
    block_row, block_col = blocks
    ref, mean_image, max_image = images
    row_range, col_range = valid
    n_frames = len(shift_row)
    n_rows, n_cols = shape
    frame = np.arange(n_frames)
    coords = {
        TIME: (TIME, frame / fs_hz, {"units": "s"}),
        FRAME: (TIME, frame),
        ROW: np.arange(n_rows),
        COL: np.arange(n_cols),
        BLOCK: np.arange(len(block_row)),
        "block_row": (BLOCK, block_row, {"units": "px", "long_name": "block centre row"}),
        "block_col": (BLOCK, block_col, {"units": "px", "long_name": "block centre col"}),
    }
    px = {"units": "px"}
    data_vars = {
        "shift_row": (TIME, shift_row.astype(np.float32), px),
        "shift_col": (TIME, shift_col.astype(np.float32), px),
        "rigid_shift_row": (TIME, rigid_row, px),
        "rigid_shift_col": (TIME, rigid_col, px),
        "nonrigid_shift_row": ((TIME, BLOCK), nr_row, px),
        "nonrigid_shift_col": ((TIME, BLOCK), nr_col, px),
        "phase_corr": (TIME, np.asarray(reg["corrXY"], np.float32)),
        "corr_ref": (TIME, corr_ref),
        "bad_frame": (TIME, bad),
        "ref_image": ((ROW, COL), ref),
        "mean_image": ((ROW, COL), mean_image),
        "max_image": ((ROW, COL), max_image),
        "mean_image_enhanced": ((ROW, COL), highpass_mean_image(mean_image).astype(np.float32)),
    }
    attrs = {
        "fs_hz": float(fs_hz),
        "valid_row_range": [int(v) for v in row_range],
        "valid_col_range": [int(v) for v in col_range],
        "sign_convention": "raw(r, c) = ref(r - shift_row, c - shift_col)",
    }
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def compute_raw_to_registered_offset(
    registration: xr.Dataset, *, bci_frames: Any = None
) -> tuple[float, float]:
    """Offset (rows, cols) from a day's motion-free raw coordinates to its registered ones.

    Targets drawn on the rig live in the rig's motion-corrected raw coordinates; the
    registered movie lives in suite2p's reference frame. With ``raw(p + d) = free(p)`` (rig
    shifts ``d``, logged per frame) and ``raw(p + s) = ref(p)`` (registration shifts ``s``),
    a point ``p`` of the motion-free frame sits at ``p - median(s - d)`` in the reference
    frame. Without logged shifts ``d`` is taken as 0 (targets drawn on raw frames).

    Parameters
    ----------
    registration : xarray.Dataset
        From :func:`register_movie`: ``shift_row(time)``, ``shift_col(time)``, px.
    bci_frames : pandas.DataFrame, optional
        The BCI log; its optional ``shift_row``/``shift_col`` columns are the rig's online
        correction shifts (same sign convention); NaN frames are ignored.

    Returns
    -------
    (float, float)
        Add to a raw (row, col) point to get its registered (row, col).
    """
    offset = []
    for name in ("shift_row", "shift_col"):
        s = np.asarray(registration[name], dtype=np.float64)
        logged = None if bci_frames is None else bci_frames.get(name)
        d = np.zeros_like(s) if logged is None else np.asarray(logged, dtype=np.float64)
        if d.shape != s.shape:
            raise ValueError(f"logged {name} has {d.size} frames, registration has {s.size}")
        offset.append(-float(np.nanmedian(s - d)))
    return offset[0], offset[1]
