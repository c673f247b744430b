"""Transforms, binary masks, IoU and Hungarian matching shared by tracking and targets."""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment

from analysis.dims import SESSION


def session_transform(transforms: xr.Dataset, session: str) -> dict[str, float]:
    if SESSION not in transforms.dims or session not in transforms[SESSION].values:
        raise ValueError(
            f"transforms have no session '{session}' (sessions: "
            f"{list(transforms[SESSION].values) if SESSION in transforms.coords else []}); "
            "run align_days on the same sessions as segment"
        )
    t = transforms.sel({SESSION: session})
    return {k: float(t[k]) for k in ("shift_row", "shift_col", "rotation_deg")}


def binary_masks(masks: xr.DataArray) -> xr.DataArray:
    return (masks > 0).astype(np.float32)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every pair of boolean masks; a (n, row, col), b (m, row, col) -> (n, m)."""
    a2 = a.reshape(a.shape[0], a.shape[1] * a.shape[2]).astype(np.float32)
    b2 = b.reshape(b.shape[0], b.shape[1] * b.shape[2]).astype(np.float32)
    inter = a2 @ b2.T
    union = a2.sum(1)[:, None] + b2.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def hungarian_matches(score: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Optimal one-to-one assignment maximising score; pairs below threshold dropped."""
    if score.size == 0:
        return []
    rows, cols = linear_sum_assignment(-score)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if score[r, c] >= threshold]
