"""Cross-day alignment of one plane's mean images (stage ``align_days``).

Contract
--------
Input: ``mean_images`` ``(session, row, col)``, one registered mean image per session of
one subject and plane (from ``registration.nc``), all the same shape.
Output of :func:`align_days`: an :class:`xarray.Dataset` with

- ``shift_row(session)``, ``shift_col(session)`` float32, px, and ``rotation_deg(session)``
  float32, degrees: each session's rigid transform (convention below);
- ``corr(session)`` float32: Pearson correlation between the reference and the aligned
  session image, both high-pass filtered, over the pixels where both are defined (the
  reference session scores 1);
- ``aligned(session, row, col)`` float32: each mean image in reference coordinates
  (NaN where the session's field of view does not cover the reference);
- ``aligned_ok(session)`` bool: ``corr >= settings.min_corr``;
- attrs ``reference_session`` and ``transform_convention``.

Transform convention
--------------------
A session's transform maps REFERENCE coordinates to SESSION coordinates. With
``p = (row, col)``, the image centre ``c = ((n_rows - 1) / 2, (n_cols - 1) / 2)``,
``t = (shift_row, shift_col)`` and ``theta = rotation_deg`` in radians::

    p_session = R(theta) @ (p_reference - c) + c + t
    R(theta) = [[cos(theta), -sin(theta)],
                [sin(theta),  cos(theta)]]      (acting on (row, col) vectors)

so ``session(p_session) = reference(p_reference)``: a structure at ``p_reference`` in the
reference day appears at ``p_session`` on that day. For a pure translation this is the
register stage's convention, ``session(r, c) = reference(r - shift_row, c - shift_col)``
(positive shifts move the content down/right). With rows pointing down on screen, a
positive ``rotation_deg`` turns the session's content counter-clockwise as displayed
(``R`` maps the +col direction (0, 1) to (-sin, cos), i.e. up and right).
:func:`to_reference` resamples session-space data into reference space and
:func:`to_session` does the inverse; :func:`points_to_session` / :func:`points_to_reference`
map point coordinates with the same transform.

Method
------
Images are high-pass filtered (difference of Gaussians) and z-scored so that brightness
changes and slow illumination gradients do not matter. Rotation is searched on a grid
within +/- ``max_rotation_deg``; for each candidate angle, whitened (phase) correlation
inside +/- ``max_shift_px`` gives the translation and a peak score, robust to cells that
appear or vanish between days; each candidate is scored by the overlap correlation. The
best candidate is refined by maximising the normalised cross-correlation (cubic-spline
resampling, Powell) over (rotation within the searched range, shift_row, shift_col +/- 3 px)
with subpixel resolution.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import xarray as xr
from scipy import ndimage as ndi
from scipy import optimize

from analysis import masks
from analysis.dims import COL, ROW, SESSION
from analysis.settings import StageSettings, require

logger = logging.getLogger(__name__)

TRANSFORM_CONVENTION = (
    "reference->session: p_session = R(rotation_deg) @ (p_reference - c) + c + "
    "(shift_row, shift_col); c = image centre; R = [[cos, -sin], [sin, cos]] on (row, col)"
)


@dataclasses.dataclass(frozen=True)
class AlignDaysSettings(StageSettings):
    """Settings of the ``align_days`` stage (config section ``align_days``).

    Attributes
    ----------
    reference_session : str or None
        Session whose coordinates are the common reference; None = the first session.
    max_rotation_deg : float
        Rotations are searched within +/- this angle, degrees.
    rotation_step_deg : float
        Grid step of the rotation search, degrees (refined to subgrid precision after).
    max_shift_px : int
        Largest translation searched, px.
    highpass_sigma_px : float
        Gaussian sigma subtracted to remove slow brightness gradients, px.
    smooth_sigma_px : float
        Gaussian sigma applied to suppress pixel noise before matching, px.
    min_corr : float
        Sessions whose post-alignment ``corr`` falls below this are marked
        ``aligned_ok = False`` and logged as warnings.
    """

    section: ClassVar[str] = "align_days"

    reference_session: str | None = None
    max_rotation_deg: float = 3.0
    rotation_step_deg: float = 0.5
    max_shift_px: int = 40
    highpass_sigma_px: float = 8.0
    smooth_sigma_px: float = 1.0
    min_corr: float = 0.3

    def __post_init__(self) -> None:
        require(
            0 <= self.max_rotation_deg <= 45,
            f"align_days.max_rotation_deg must be in [0, 45], got {self.max_rotation_deg}",
        )
        require(
            0 < self.rotation_step_deg <= 5,
            f"align_days.rotation_step_deg must be in (0, 5], got {self.rotation_step_deg}",
        )
        require(
            self.max_shift_px >= 1,
            f"align_days.max_shift_px must be >= 1, got {self.max_shift_px}",
        )
        require(
            self.highpass_sigma_px > self.smooth_sigma_px >= 0,
            "align_days.highpass_sigma_px must exceed smooth_sigma_px >= 0, got "
            f"{self.highpass_sigma_px} and {self.smooth_sigma_px}",
        )
        require(
            -1 <= self.min_corr <= 1,
            f"align_days.min_corr must be in [-1, 1], got {self.min_corr}",
        )


# --- transforms ------------------------------------------------------------------------


def _transform_params(transform: Mapping[str, Any]) -> tuple[float, float, float]:
    missing = [k for k in ("shift_row", "shift_col", "rotation_deg") if k not in transform]
    if missing:
        raise KeyError(
            f"transform lacks {missing}; pass a mapping with shift_row, shift_col, "
            "rotation_deg (e.g. transforms.sel(session=...) from align_days)"
        )
    return (
        float(transform["shift_row"]),
        float(transform["shift_col"]),
        float(transform["rotation_deg"]),
    )


def _rotation(rotation_deg: float) -> np.ndarray:
    theta = np.deg2rad(rotation_deg)
    return np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


def _ref_to_session_affine(
    shape: tuple[int, int], shift_row: float, shift_col: float, rotation_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """(matrix, offset) with p_session = matrix @ p_reference + offset."""
    centre = (np.asarray(shape, float) - 1) / 2
    rot = _rotation(rotation_deg)
    return rot, centre + np.array([shift_row, shift_col]) - rot @ centre


def _resample(
    data: np.ndarray, matrix: np.ndarray, offset: np.ndarray, *, fill_value: float
) -> np.ndarray:
    """out[..., p] = data[..., matrix @ p + offset], bilinear, over the last two axes."""
    flat = np.asarray(data, np.float32).reshape(-1, *data.shape[-2:])
    out = np.empty(flat.shape, np.float32)
    for i, plane in enumerate(flat):
        out[i] = ndi.affine_transform(
            plane, matrix, offset=offset, order=1, mode="constant", cval=fill_value
        )
    return out.reshape(data.shape)


def _apply(data: Any, matrix: np.ndarray, offset: np.ndarray, *, fill_value: float) -> Any:
    if masks.is_sparse(data):
        if fill_value != 0:
            raise ValueError("sparse masks are 0 outside their pixels: fill_value must be 0")
        return masks.warp(data, matrix, offset)
    values = data.values if isinstance(data, xr.DataArray) else np.asarray(data)
    if values.ndim not in (2, 3):
        raise ValueError(
            f"expected an image (row, col) or masks (roi, row, col), got {values.ndim} dims"
        )
    if isinstance(data, xr.DataArray) and tuple(data.dims[-2:]) != (ROW, COL):
        raise ValueError(f"last two dims must be ('row', 'col'), got {data.dims}")
    out = _resample(values, matrix, offset, fill_value=fill_value)
    return data.copy(data=out) if isinstance(data, xr.DataArray) else out


def _shape(data: Any) -> tuple[int, int]:
    return masks.field_shape(data) if masks.is_sparse(data) else np.shape(data)[-2:]


def to_reference(data: Any, transform: Mapping[str, Any], *, fill_value: float = 0.0) -> Any:
    """Resample session-space data into reference coordinates.

    Parameters
    ----------
    data : xarray.DataArray or numpy.ndarray, (row, col) or (roi, row, col), or sparse masks
        Image or mask stack in the session's coordinates (:mod:`analysis.masks`: warped
        ROI by ROI, returned sparse).
    transform : Mapping
        ``shift_row``, ``shift_col`` (px) and ``rotation_deg`` of that session (the
        reference -> session transform of :func:`align_days`, e.g.
        ``transforms.sel(session="day03")``).
    fill_value : float
        Value for reference pixels outside the session's field of view.

    Returns
    -------
    Same type, dims, coords and shape as ``data``, float32, bilinear interpolation.
    """
    matrix, offset = _ref_to_session_affine(_shape(data), *_transform_params(transform))
    return _apply(data, matrix, offset, fill_value=fill_value)


def to_session(data: Any, transform: Mapping[str, Any], *, fill_value: float = 0.0) -> Any:
    """Resample reference-space data into a session's coordinates (inverse of
    :func:`to_reference`).

    Parameters
    ----------
    data : xarray.DataArray or numpy.ndarray, (row, col) or (roi, row, col), or sparse masks
        Image or mask stack in reference coordinates.
    transform : Mapping
        ``shift_row``, ``shift_col`` (px), ``rotation_deg`` of the target session.
    fill_value : float
        Value for session pixels outside the reference field of view.

    Returns
    -------
    Same type, dims, coords and shape as ``data``, float32, bilinear interpolation.
    """
    matrix, offset = _ref_to_session_affine(_shape(data), *_transform_params(transform))
    inverse = matrix.T
    return _apply(data, inverse, -inverse @ offset, fill_value=fill_value)


def points_to_session(
    points: np.ndarray, transform: Mapping[str, Any], *, shape: tuple[int, int]
) -> np.ndarray:
    """Map ``(n, 2)`` (row, col) points from reference to session coordinates, px.

    ``shape`` is the (n_rows, n_cols) of the images, which fixes the rotation centre.
    """
    matrix, offset = _ref_to_session_affine(shape, *_transform_params(transform))
    return np.asarray(points, float) @ matrix.T + offset


def points_to_reference(
    points: np.ndarray, transform: Mapping[str, Any], *, shape: tuple[int, int]
) -> np.ndarray:
    """Map ``(n, 2)`` (row, col) points from session to reference coordinates, px."""
    matrix, offset = _ref_to_session_affine(shape, *_transform_params(transform))
    return (np.asarray(points, float) - offset) @ matrix


# --- estimation ------------------------------------------------------------------------


def _normalise(image: np.ndarray, settings: AlignDaysSettings) -> np.ndarray:
    """Band-pass (difference of Gaussians) and z-score: brightness- and gradient-free."""
    img = np.nan_to_num(np.asarray(image, np.float64))
    band = ndi.gaussian_filter(img, settings.smooth_sigma_px) - ndi.gaussian_filter(
        img, settings.highpass_sigma_px
    )
    std = band.std()
    if std == 0:
        raise ValueError("align_days: a mean image is constant; nothing to align")
    return (band - band.mean()) / std


def _phase_peak(ref_fft: np.ndarray, moving: np.ndarray, max_shift: int) -> np.ndarray:
    """Whitened cross-correlation peak within +/- max_shift: (d_row, d_col), px.

    ``(d_row, d_col)`` is the displacement of ``moving``'s content relative to the
    reference (moving(p) ~ ref(p - d)), refined below a pixel by a parabola through the
    peak and its neighbours along each axis.
    """
    cross = np.fft.fft2(moving) * np.conj(ref_fft)
    cross /= np.abs(cross) + 1e-12
    corr = np.real(np.fft.ifft2(cross))
    n_rows, n_cols = corr.shape
    lags = np.r_[0 : max_shift + 1, -max_shift:0]
    window = corr[np.ix_(lags % n_rows, lags % n_cols)]
    i, j = np.unravel_index(np.argmax(window), window.shape)
    centre = np.array([lags[i], lags[j]])
    peak = centre.astype(float)
    for axis in range(2):
        step = np.zeros(2, int)
        step[axis] = 1
        before, at, after = (
            corr[tuple((centre + k * step) % (n_rows, n_cols))] for k in (-1, 0, 1)
        )
        curvature = before - 2 * at + after
        if curvature < 0:
            peak[axis] += 0.5 * (before - after) / curvature
    return peak


def _overlap_corr(ref: np.ndarray, moving: np.ndarray, params: np.ndarray, margin: int) -> float:
    """Pearson r of reference and ``to_reference(moving)`` over the covered pixels."""
    matrix, offset = _ref_to_session_affine(ref.shape, *params)
    warped = ndi.affine_transform(moving, matrix, offset=offset, order=1, cval=np.nan)
    valid = np.isfinite(warped)
    valid[:margin] = valid[-margin:] = False
    valid[:, :margin] = valid[:, -margin:] = False
    if valid.sum() < 100:
        return -1.0
    a = ref[valid] - ref[valid].mean()
    b = warped[valid] - warped[valid].mean()
    denom = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / denom) if denom > 0 else -1.0


def _estimate(ref: np.ndarray, moving: np.ndarray, settings: AlignDaysSettings) -> np.ndarray:
    """(shift_row, shift_col, rotation_deg) of ``moving`` relative to ``ref`` (normalised)."""
    shape = np.array(ref.shape)
    max_shift = int(min(settings.max_shift_px, shape.min() // 2 - 1))
    # a Hann taper keeps image borders from dominating the whitened spectrum
    taper = np.outer(np.hanning(shape[0]), np.hanning(shape[1]))
    ref_fft = np.fft.fft2(ref * taper)
    n_steps = int(np.floor(settings.max_rotation_deg / settings.rotation_step_deg))
    angles = np.arange(-n_steps, n_steps + 1) * settings.rotation_step_deg
    margin = max(2, int(np.ceil(settings.smooth_sigma_px * 2)))
    best_score, x0 = -np.inf, np.zeros(3)
    for angle in angles:
        # moving sampled at R(angle)(p - c) + c: for the true angle this is the reference
        # displaced by R^T t, so the phase-correlation peak gives d = R^T t
        matrix, offset = _ref_to_session_affine(ref.shape, 0.0, 0.0, angle)
        derotated = ndi.affine_transform(moving, matrix, offset=offset, order=1, cval=0.0)
        displacement = _phase_peak(ref_fft, derotated * taper, max_shift)
        candidate = np.r_[_rotation(angle) @ displacement, angle]
        # whitened peak heights are noisy across angles; the overlap correlation is smooth
        score = _overlap_corr(ref, moving, candidate, margin)
        if score > best_score:
            best_score, x0 = score, candidate
    # refine on a fixed pixel set (a moving overlap mask would make the objective jump)
    # with cubic-spline resampling (smooth in the parameters)
    matrix, offset = _ref_to_session_affine(ref.shape, *x0)
    inside = ndi.affine_transform(np.ones(ref.shape), matrix, offset=offset, order=1, cval=0.0)
    mask = ndi.binary_erosion(inside > 0.999, iterations=margin + 3, border_value=0)
    if mask.sum() < 100:
        return x0
    ref_values = ref[mask] - ref[mask].mean()
    coefficients = ndi.spline_filter(moving, order=3)

    def negative_corr(params: np.ndarray) -> float:
        matrix, offset = _ref_to_session_affine(ref.shape, *params)
        warped = ndi.affine_transform(
            coefficients, matrix, offset=offset, order=3, prefilter=False, cval=0.0
        )[mask]
        warped -= warped.mean()
        denom = np.sqrt((ref_values @ ref_values) * (warped @ warped))
        return -float(ref_values @ warped / denom) if denom > 0 else 1.0

    # the correlation is broad in angle for smooth images: let the angle roam the whole
    # searched range rather than trusting the grid point
    if settings.max_rotation_deg == 0:
        result = optimize.minimize(
            lambda shift: negative_corr(np.r_[shift, 0.0]),
            x0[:2],
            method="Powell",
            bounds=[(x0[0] - 2, x0[0] + 2), (x0[1] - 2, x0[1] + 2)],
            options={"xtol": 1e-4, "ftol": 1e-9},
        )
        refined = np.r_[result.x, 0.0]
    else:
        bounds = [
            (x0[0] - 3, x0[0] + 3),
            (x0[1] - 3, x0[1] + 3),
            (-settings.max_rotation_deg, settings.max_rotation_deg),
        ]
        result = optimize.minimize(
            negative_corr, x0, method="Powell", bounds=bounds, options={"xtol": 1e-4, "ftol": 1e-9}
        )
        refined = result.x
    return refined if negative_corr(refined) <= negative_corr(x0) else x0


def stack_sessions(images: Mapping[str, xr.DataArray]) -> xr.DataArray:
    """Stack per-session images ``(row, col)`` into ``(session, row, col)``.

    Raises
    ------
    ValueError
        If the sessions' frame sizes differ (xarray would silently pad with NaN): the
        message names each session's size and the fix.
    """
    shapes = {session: tuple(image.shape) for session, image in images.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(
            f"sessions have different frame sizes (rows, cols) {shapes}; cross-day alignment "
            "needs one frame size per plane: image every day with the same scan settings, "
            "or crop the odd day's imaging to the common size before ingest."
        )
    return xr.concat(
        list(images.values()), dim=xr.DataArray(list(images), dims=SESSION, name=SESSION)
    )


def align_days(mean_images: xr.DataArray, *, settings: AlignDaysSettings) -> xr.Dataset:
    """Align each session's mean image to a reference session (rotation + translation).

    Parameters
    ----------
    mean_images : xarray.DataArray, (session, row, col)
        One mean (or enhanced mean) image per session, same plane and shape; the
        ``session`` coordinate holds session names.
    settings : AlignDaysSettings
        Stage settings.

    Returns
    -------
    xarray.Dataset
        ``shift_row``, ``shift_col`` (px), ``rotation_deg`` (deg), ``corr``,
        ``aligned_ok`` per session and ``aligned (session, row, col)``; see the module
        docstring for the reference -> session transform convention.

    Raises
    ------
    ValueError
        If dims are not (session, row, col), an image contains only NaN/constant values,
        session names repeat, or ``reference_session`` is not among the sessions.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> img = ndi.gaussian_filter(rng.normal(size=(64, 64)), 2)
    >>> stack = xr.DataArray(np.stack([img, np.roll(img, 3, axis=0)]),
    ...                      dims=("session", "row", "col"), coords={"session": ["d1", "d2"]})
    >>> round(float(align_days(stack, settings=AlignDaysSettings()).shift_row[1]))
    3
    """
    if not isinstance(mean_images, xr.DataArray):
        raise TypeError("align_days: mean_images must be an xarray.DataArray (session, row, col)")
    if mean_images.dims != (SESSION, ROW, COL):
        raise ValueError(
            f"align_days: mean_images dims must be ('session', 'row', 'col'), "
            f"got {mean_images.dims}"
        )
    sessions = [str(s) for s in mean_images[SESSION].values]
    if len(set(sessions)) != len(sessions):
        raise ValueError(f"align_days: session names repeat: {sessions}")
    if min(mean_images.sizes[ROW], mean_images.sizes[COL]) < 16:
        raise ValueError("align_days: images must be at least 16 x 16 px")
    if not np.isfinite(mean_images.values).any(axis=(1, 2)).all():
        raise ValueError("align_days: a session's mean image is all NaN")
    reference = settings.reference_session or sessions[0]
    if reference not in sessions:
        raise ValueError(
            f"align_days: reference_session {reference!r} not among sessions {sessions}"
        )

    normalised = {s: _normalise(mean_images.values[i], settings) for i, s in enumerate(sessions)}
    ref = normalised[reference]
    margin = max(2, int(np.ceil(settings.smooth_sigma_px * 2)))
    params = np.zeros((len(sessions), 3))
    corr = np.ones(len(sessions))
    for i, session in enumerate(sessions):
        if session == reference:
            continue
        params[i] = _estimate(ref, normalised[session], settings)
        corr[i] = _overlap_corr(ref, normalised[session], params[i], margin)
        logger.info(
            "%s -> %s: shift (%.2f, %.2f) px, rotation %.3f deg, corr %.3f",
            reference,
            session,
            *params[i],
            corr[i],
        )
        if corr[i] < settings.min_corr:
            logger.warning(
                "%s: correlation with reference %s after alignment is %.3f (< min_corr %.3f); "
                "check the overlay",
                session,
                reference,
                corr[i],
                settings.min_corr,
            )

    aligned = np.stack(
        [
            to_reference(
                mean_images.values[i],
                dict(zip(("shift_row", "shift_col", "rotation_deg"), params[i], strict=True)),
                fill_value=np.nan,
            )
            for i in range(len(sessions))
        ]
    )
    coords = {SESSION: sessions, ROW: mean_images[ROW].values, COL: mean_images[COL].values}
    return xr.Dataset(
        {
            "shift_row": (SESSION, params[:, 0].astype(np.float32), {"units": "px"}),
            "shift_col": (SESSION, params[:, 1].astype(np.float32), {"units": "px"}),
            "rotation_deg": (SESSION, params[:, 2].astype(np.float32), {"units": "deg"}),
            "corr": (SESSION, corr.astype(np.float32)),
            "aligned_ok": (SESSION, corr >= settings.min_corr),
            "aligned": ((SESSION, ROW, COL), aligned.astype(np.float32)),
        },
        coords=coords,
        attrs={"reference_session": reference, "transform_convention": TRANSFORM_CONVENTION},
    )


def compute_overlay(reference: Any, aligned: Any) -> np.ndarray:
    """RGB QC overlay: reference in magenta, aligned session in green.

    Where the two agree the overlay is grey/white; misaligned structure shows as separate
    magenta and green. Each image is scaled to [0, 1] between its 1st and 99th
    percentiles; NaN (outside the field of view) is black.

    Parameters
    ----------
    reference, aligned : array-like, (row, col)
        Reference mean image and a session's ``aligned`` image, same shape.

    Returns
    -------
    numpy.ndarray, (row, col, 3), float32 in [0, 1]
        Channels R = B = reference, G = aligned.
    """
    ref, ali = np.asarray(reference, np.float64), np.asarray(aligned, np.float64)
    if ref.ndim != 2 or ref.shape != ali.shape:
        raise ValueError(
            f"compute_overlay: need two 2-D images of equal shape, got {ref.shape} and {ali.shape}"
        )

    def scale(img: np.ndarray) -> np.ndarray:
        finite = img[np.isfinite(img)]
        if finite.size == 0:
            return np.zeros(img.shape)
        lo, hi = np.percentile(finite, [1, 99])
        out = (img - lo) / (hi - lo) if hi > lo else np.zeros(img.shape)
        return np.nan_to_num(np.clip(out, 0, 1), nan=0.0)

    r, g = scale(ref), scale(ali)
    return np.stack([r, g, r], axis=-1).astype(np.float32)
