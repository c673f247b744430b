"""Transforms, binary (sparse) masks, IoU and Hungarian matching shared by tracking and targets."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from scipy import sparse
from scipy.optimize import linear_sum_assignment

from analysis.dims import SESSION
from analysis.masks import is_sparse, mask_matrix


def session_transform(transforms: xr.Dataset, session: str) -> dict[str, float]:
    if SESSION not in transforms.dims or session not in transforms[SESSION].values:
        raise ValueError(
            f"transforms have no session '{session}' (sessions: "
            f"{list(transforms[SESSION].values) if SESSION in transforms.coords else []}); "
            "run align_days on the same sessions as segment"
        )
    t = transforms.sel({SESSION: session})
    return {k: float(t[k]) for k in ("shift_row", "shift_col", "rotation_deg")}


def binary_rows(masks: Any) -> sparse.csr_matrix:
    """Binary ``(n, pixel)`` CSR of a sparse mask set, a CSR matrix or an ``(n, row, col)``
    array (True where the weight is > 0)."""
    if is_sparse(masks):
        return mask_matrix(masks, binary=True)
    if sparse.issparse(masks):
        out = sparse.csr_matrix(masks, dtype=np.float32, copy=True)
        out.eliminate_zeros()
        out.data[:] = 1.0
        return out
    values = np.asarray(masks)
    return sparse.csr_matrix((values.reshape(values.shape[0], -1) > 0).astype(np.float32))


def iou_matrix(a: Any, b: Any) -> np.ndarray:
    """IoU of every pair of binary masks (see :func:`binary_rows`); n and m masks -> (n, m)."""
    a2, b2 = binary_rows(a), binary_rows(b)
    inter = (a2 @ b2.T).toarray()
    sizes_a, sizes_b = (m.getnnz(axis=1).astype(np.float32) for m in (a2, b2))
    union = sizes_a[:, None] + sizes_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def hungarian_matches(score: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Optimal one-to-one assignment maximising score; pairs below threshold dropped."""
    if score.size == 0:
        return []
    rows, cols = linear_sum_assignment(-score)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if score[r, c] >= threshold]
