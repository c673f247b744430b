"""Known-answer tests for analysis.align_days (cross-day rotation + translation)."""

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage as ndi

from analysis.align_days import (
    AlignDaysSettings,
    align_days,
    compute_overlay,
    points_to_reference,
    points_to_session,
    stack_sessions,
    to_reference,
    to_session,
)
from analysis.settings import ConfigError

N_PX = 128
CENTRE = (N_PX - 1) / 2


def _field(rng: np.random.Generator, n_blobs: int = 60) -> tuple[np.ndarray, list[np.ndarray]]:
    """Neuropil-like texture with a brightness gradient, plus soma-like blobs."""
    rr, cc = np.mgrid[:N_PX, :N_PX]
    background = ndi.gaussian_filter(rng.normal(size=(N_PX, N_PX)), 1.5) * 30 + 100 + 0.3 * rr
    blobs = [
        80 * np.exp(-((rr - r) ** 2 + (cc - c) ** 2) / (2 * 2.5**2))
        for r, c in rng.uniform(5, N_PX - 5, (n_blobs, 2))
    ]
    return background, blobs


def _as_session(image: np.ndarray, shift_row: float, shift_col: float, rot_deg: float):
    """Session view of a reference-space image: session(q) = ref(R^T (q - c - t) + c)."""
    theta = np.deg2rad(rot_deg)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    q = np.stack(np.mgrid[:N_PX, :N_PX]).reshape(2, -1).astype(float)
    p = rot.T @ (q - CENTRE - np.array([[shift_row], [shift_col]])) + CENTRE
    return ndi.map_coordinates(image, p, order=3, mode="nearest").reshape(N_PX, N_PX)


TRUTH = [(0.0, 0.0, 0.0), (7.3, -12.6, 1.7), (-14.2, 5.5, -2.0), (3.1, 14.9, 0.6)]


@pytest.fixture(scope="module")
def sessions() -> xr.DataArray:
    rng = np.random.default_rng(7)
    background, blobs = _field(rng)
    images = [background + sum(blobs) + rng.normal(0, 3, (N_PX, N_PX))]
    for shift_row, shift_col, rot in TRUTH[1:]:
        # some cells vanish between days and the whole day is 20% dimmer
        kept = background + sum(b for b in blobs if rng.random() > 0.1)
        day = 0.8 * _as_session(kept, shift_row, shift_col, rot)
        images.append(day + rng.normal(0, 3, (N_PX, N_PX)))
    return xr.DataArray(
        np.stack(images).astype(np.float32),
        dims=("session", "row", "col"),
        coords={"session": ["day01", "day02", "day03", "day04"]},
    )


@pytest.fixture(scope="module")
def transforms(sessions) -> xr.Dataset:
    return align_days(sessions, settings=AlignDaysSettings())


def test_recovers_known_rotation_and_shift(transforms):
    truth = np.array(TRUTH)
    np.testing.assert_allclose(transforms.shift_row, truth[:, 0], atol=0.5)
    np.testing.assert_allclose(transforms.shift_col, truth[:, 1], atol=0.5)
    np.testing.assert_allclose(transforms.rotation_deg, truth[:, 2], atol=0.2)
    assert transforms.attrs["reference_session"] == "day01"
    assert float(transforms.corr.sel(session="day01")) == 1.0
    assert (transforms.corr > 0.8).all() and transforms.aligned_ok.all()
    assert transforms.aligned.dims == ("session", "row", "col")
    assert transforms.aligned.dtype == np.float32


def test_aligned_images_match_reference(sessions, transforms):
    ref = sessions.sel(session="day01").values
    for session in ["day02", "day03", "day04"]:
        aligned = transforms.aligned.sel(session=session).values
        ok = np.isfinite(aligned)
        assert ok.mean() > 0.7  # NaN only where the day's field of view does not reach
        assert np.corrcoef(aligned[ok], ref[ok])[0, 1] > 0.9
        raw_ok = np.corrcoef(sessions.sel(session=session).values.ravel(), ref.ravel())[0, 1]
        assert raw_ok < 0.5  # the unaligned image does not match


def test_other_reference_session(sessions):
    ds = align_days(sessions, settings=AlignDaysSettings(reference_session="day03"))
    assert ds.attrs["reference_session"] == "day03"
    ref_t = ds.sel(session="day03")
    assert float(ref_t.shift_row) == float(ref_t.rotation_deg) == 0.0
    # day01 relative to day03 is the inverse of day03 relative to day01
    np.testing.assert_allclose(float(ds.rotation_deg.sel(session="day01")), 2.0, atol=0.2)


def test_pure_translation_sign_convention():
    rng = np.random.default_rng(3)
    background, blobs = _field(rng)
    ref = background + sum(blobs)
    # session(r, c) = ref(r - 3, c + 2): content moved 3 rows down, 2 cols left
    day = np.roll(ref, (3, -2), axis=(0, 1))
    stack = xr.DataArray(
        np.stack([ref, day]), dims=("session", "row", "col"), coords={"session": ["a", "b"]}
    )
    ds = align_days(stack, settings=AlignDaysSettings(max_rotation_deg=0.0))
    assert float(ds.shift_row[1]) == pytest.approx(3, abs=0.1)
    assert float(ds.shift_col[1]) == pytest.approx(-2, abs=0.1)
    assert float(ds.rotation_deg[1]) == 0.0


def test_positive_rotation_turns_content_counterclockwise_on_screen():
    transform = {"shift_row": 0.0, "shift_col": 0.0, "rotation_deg": 10.0}
    right_of_centre = np.array([[CENTRE, CENTRE + 20]])
    moved = points_to_session(right_of_centre, transform, shape=(N_PX, N_PX))
    assert moved[0, 0] < CENTRE  # lifted (smaller row) on screen


def test_point_and_image_round_trips():
    rng = np.random.default_rng(4)
    transform = {"shift_row": 6.4, "shift_col": -3.2, "rotation_deg": 1.5}
    points = rng.uniform(0, N_PX, (20, 2))
    back = points_to_reference(
        points_to_session(points, transform, shape=(N_PX, N_PX)), transform, shape=(N_PX, N_PX)
    )
    np.testing.assert_allclose(back, points, atol=1e-9)

    image = ndi.gaussian_filter(rng.normal(size=(N_PX, N_PX)), 3)
    round_trip = to_session(to_reference(image, transform), transform)
    inner = (slice(20, -20), slice(20, -20))
    assert np.abs(round_trip[inner] - image[inner]).max() < 0.1 * np.abs(image).max()


def test_masks_move_with_the_transform():
    transform = xr.Dataset({"shift_row": 4.5, "shift_col": -7.25, "rotation_deg": -1.8})
    rr, cc = np.mgrid[:N_PX, :N_PX]
    centres = np.array([[30.0, 40.0], [90.0, 70.0], [64.0, 100.0]])
    stack = np.stack([((rr - r) ** 2 + (cc - c) ** 2 <= 25).astype(np.float32) for r, c in centres])
    masks = xr.DataArray(
        stack,
        dims=("roi", "row", "col"),
        coords={"roi": [3, 5, 9], "is_cell": ("roi", [True, True, False])},
    )
    before = masks.copy(deep=True)

    moved = to_session(masks, transform)

    xr.testing.assert_identical(masks, before)  # input untouched
    assert moved.dims == masks.dims and moved.dtype == np.float32
    np.testing.assert_array_equal(moved.roi, [3, 5, 9])
    np.testing.assert_array_equal(moved.is_cell, [True, True, False])
    expected = points_to_session(centres, transform, shape=(N_PX, N_PX))
    got = np.array([ndi.center_of_mass(m) for m in moved.values])
    np.testing.assert_allclose(got, expected, atol=0.1)
    np.testing.assert_allclose(moved.sum(("row", "col")), masks.sum(("row", "col")), rtol=0.02)
    back = to_reference(moved, transform)
    np.testing.assert_allclose([ndi.center_of_mass(m) for m in back.values], centres, atol=0.1)


def test_compute_overlay():
    rng = np.random.default_rng(5)
    ref = rng.random((32, 32))
    overlay = compute_overlay(ref, ref)
    assert overlay.shape == (32, 32, 3) and overlay.dtype == np.float32
    assert 0 <= overlay.min() and overlay.max() <= 1
    np.testing.assert_array_equal(overlay[..., 0], overlay[..., 2])  # magenta reference
    np.testing.assert_array_equal(overlay[..., 0], overlay[..., 1])  # aligned = grey
    aligned = ref.copy()
    aligned[:4] = np.nan
    assert (compute_overlay(ref, aligned)[:4, :, 1] == 0).all()
    with pytest.raises(ValueError, match="equal shape"):
        compute_overlay(ref, ref[:10])


def test_bad_inputs(sessions):
    settings = AlignDaysSettings()
    with pytest.raises(ValueError, match="dims"):
        align_days(sessions.transpose("row", "session", "col"), settings=settings)
    with pytest.raises(ValueError, match="repeat"):
        align_days(sessions.assign_coords(session=["a", "a", "b", "c"]), settings=settings)
    with pytest.raises(ValueError, match="not among"):
        align_days(sessions, settings=AlignDaysSettings(reference_session="day99"))
    with pytest.raises(ValueError, match="constant"):
        align_days(xr.zeros_like(sessions), settings=settings)
    with pytest.raises(TypeError, match="DataArray"):
        align_days(sessions.values, settings=settings)
    with pytest.raises(KeyError, match="rotation_deg"):
        to_reference(sessions[0], {"shift_row": 1.0, "shift_col": 0.0})
    with pytest.raises(ValueError, match="dims"):
        to_session(np.zeros((2, 2, 8, 8)), {"shift_row": 0, "shift_col": 0, "rotation_deg": 0})


def test_settings_validation():
    assert (
        AlignDaysSettings.from_mapping({"reference_session": "day02"}).reference_session == "day02"
    )
    with pytest.raises(ConfigError, match="max_rotation_deg"):
        AlignDaysSettings.from_mapping({"max_rotation": 2})
    with pytest.raises(ConfigError, match="max_shift_px"):
        AlignDaysSettings.from_mapping({"max_shift_px": 0})


def test_stack_sessions_rejects_different_frame_sizes():
    a = xr.DataArray(np.zeros((8, 8)), dims=("row", "col"))
    b = xr.DataArray(np.zeros((8, 9)), dims=("row", "col"))
    stacked = stack_sessions({"day01": a, "day02": a})
    assert stacked.dims == ("session", "row", "col")
    assert list(stacked.session.values) == ["day01", "day02"]
    with pytest.raises(ValueError, match=r"different frame sizes .*'day02': \(8, 9\)"):
        stack_sessions({"day01": a, "day02": b})
