"""Soma cell classifier: logistic regression on each candidate ROI's features.

Trained on simulated sessions whose somata are known (``python -m
analysis.segment.train_classifier``, see there for the exact recipe) and shipped in the
package as ``soma_classifier.json``: no downloaded weights. Features are in units of the
expected soma (``diameter_px``) and of the image's own statistics, so one model serves
fields of any size, brightness and frame rate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

#: the features, in the model's column order. Left out, though stored on every ROI: the
#: trace skewness and the blob SNR, which grow with recording length and photon count
#: (a real 80 s movie's candidates have median skewness 1.5, the simulator's 0.4), and the
#: sign of the blob response (somata are brighter or darker than their neuropil depending
#: on expression and nuclear exclusion): a model must not learn one simulator's values.
FEATURES = (
    "anatomical",
    "log_area",
    "compactness",
    "abs_log_contrast",
    "abs_blob_z",
    "correlation_contrast",
)
BUILTIN = "builtin"
BUILTIN_FILE = "soma_classifier.json"


def feature_matrix(rois: Mapping[str, Any], diameter_px: float) -> np.ndarray:
    """(roi, feature) matrix in :data:`FEATURES` order from the ROI coordinates that
    :func:`analysis.segment.detect_somata` stores."""
    disk = np.pi * (diameter_px / 2.0) ** 2
    area = np.asarray(rois["area_px"], np.float64)
    contrast = np.maximum(np.asarray(rois["contrast"], np.float64), 1e-3)
    columns = {
        "anatomical": np.asarray(rois["anatomical"], np.float64),
        "log_area": np.log(np.maximum(area, 1.0) / disk),
        "compactness": np.asarray(rois["compactness"], np.float64),
        "abs_log_contrast": np.abs(np.log(contrast)),
        "abs_blob_z": np.abs(np.asarray(rois["blob_z"], np.float64)),
        "correlation_contrast": np.asarray(rois["correlation_contrast"], np.float64),
    }
    return (
        np.column_stack([columns[name] for name in FEATURES])
        if len(area)
        else np.zeros((0, len(FEATURES)))
    )


def load(source: str) -> dict[str, Any]:
    """The model: ``"builtin"`` (the package's) or a path to a JSON written by
    :func:`analysis.segment.train_classifier.main`."""
    if source == BUILTIN:
        text = resources.files("analysis.segment").joinpath(BUILTIN_FILE).read_text()
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(
                f"segment.classifier: '{source}' is neither 'builtin' nor a classifier file; "
                "train one with python -m analysis.segment.train_classifier"
            )
        text = path.read_text()
    model = json.loads(text)
    if tuple(model["features"]) != FEATURES:
        raise ValueError(
            f"segment.classifier '{source}' was trained on features {model['features']}, "
            f"this version computes {list(FEATURES)}; retrain it"
        )
    return model


def probability(model: Mapping[str, Any], features: np.ndarray) -> np.ndarray:
    """Cell probability of each row of ``features`` (standardised, then logistic)."""
    z = (features - np.asarray(model["mean"])) / np.asarray(model["scale"])
    logit = z @ np.asarray(model["coef"]) + float(model["intercept"])
    return 1.0 / (1.0 + np.exp(-logit))


def fit(
    features: np.ndarray, labels: np.ndarray, n_true: int, provenance: Mapping[str, Any]
) -> dict:
    """Logistic regression (L2, C = 1) on standardised features; the JSON-ready model.

    Its ``threshold`` is the probability cut with the best F1 on these candidates, recall
    counted against ``n_true`` (every true soma, found as a candidate or not).
    """
    from sklearn.linear_model import LogisticRegression

    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale == 0] = 1.0
    standardised = (features - mean) / scale
    reg = LogisticRegression(C=1.0, max_iter=2000).fit(standardised, labels)
    p = reg.predict_proba(standardised)[:, 1]
    cuts = np.unique(np.round(p, 3))
    hits = np.array([(labels & (p >= c)).sum() for c in cuts])
    called = np.array([(p >= c).sum() for c in cuts])
    f1 = 2 * hits / (called + max(n_true, 1))
    return {
        "features": list(FEATURES),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": reg.coef_[0].tolist(),
        "intercept": float(reg.intercept_[0]),
        "threshold": float(cuts[f1.argmax()]) if len(cuts) else 0.5,
        "training_f1": float(f1.max()) if len(cuts) else 0.0,
        "training": dict(provenance),
    }
