"""Known-answer tests for analysis.masks (the sparse mask format between stages)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from analysis import align_days, masks


def _dense(seed: int = 0, shape=(40, 50)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros((4, *shape), np.float32)
    out[0, 3:9, 4:10] = rng.uniform(0.1, 1.0, (6, 6))
    out[1, 20:25, 30:33] = 1.0
    out[2, 0:3, 0:4] = 0.5  # at the field's corner
    return out  # ROI 3 is empty


def test_dense_round_trip_keeps_ids_coords_and_order():
    dense = xr.DataArray(
        _dense(),
        dims=("roi", "row", "col"),
        coords={"roi": [7, 3, 9, 1], "is_cell": ("roi", [True, False, True, True])},
    )
    sparse = masks.from_dense(dense)
    assert masks.is_sparse(sparse) and masks.field_shape(sparse) == (40, 50)
    assert sparse["pixel_weight"].dtype == np.float32
    back = masks.to_dense(sparse)
    np.testing.assert_array_equal(back.values, dense.values)
    assert list(back.roi.values) == [7, 3, 9, 1] and list(back.is_cell.values) == [1, 0, 1, 1]
    np.testing.assert_array_equal(masks.n_pixels(sparse), [36, 15, 12, 0])
    row, col = masks.centroids(sparse)
    assert (row[1], col[1]) == (22.0, 31.0) and np.isnan(row[3])


def test_crop_and_select():
    sparse = masks.from_dense(_dense())
    box, origin = masks.crop(sparse, 1, margin=2)
    assert origin == (18, 28) and box.shape == (9, 7) and box.sum() == 15
    box, origin = masks.crop(sparse, 2, margin=2)
    assert origin == (0, 0) and box.shape == (5, 6)
    assert masks.crop(sparse, 3)[0].shape == (0, 0)
    two = masks.select_rois(sparse, [0, 2])
    assert list(two.roi.values) == [0, 2] and int(two.sizes["pixel"]) == 48


@pytest.mark.parametrize(
    "transform",
    [
        {"shift_row": 2.3, "shift_col": -1.7, "rotation_deg": 3.0},
        {"shift_row": -5.0, "shift_col": 4.0, "rotation_deg": 0.0},
        {"shift_row": 10.2, "shift_col": 0.0, "rotation_deg": -7.0},
    ],
)
def test_warp_equals_resampling_the_whole_field(transform):
    dense = _dense(1)
    sparse = masks.from_dense(dense)
    for move in (align_days.to_reference, align_days.to_session):
        np.testing.assert_array_equal(
            masks.to_dense(move(sparse, transform)).values, move(dense, transform)
        )


def test_sessions_stacked_and_selected():
    reference = masks.from_dense(_dense(0), coords={"n": np.arange(4)})
    day = masks.from_dense(_dense(2), coords={"n": np.arange(4)})
    tracked = masks.stack_sessions(reference, {"day01": reference, "day02": day})
    np.testing.assert_array_equal(
        masks.to_dense(masks.select_session(tracked, "day02")).values, _dense(2)
    )
    np.testing.assert_array_equal(
        masks.to_dense(masks.select_session(tracked, None)).values, _dense(0)
    )
    with pytest.raises(ValueError, match="no session 'day09'"):
        masks.select_session(tracked, "day09")


def test_bad_masks_are_refused():
    with pytest.raises(ValueError, match="outside the 4 x 5 field"):
        masks.sparse_masks([(np.array([4]), np.array([0]), np.array([1.0]))], shape=(4, 5))
    with pytest.raises(ValueError, match="sparse mask set"):
        masks.check_masks(_dense())
    with pytest.raises(ValueError, match=r"ROIs \[3\] have no pixel"):
        masks.check_masks(masks.from_dense(_dense()))
