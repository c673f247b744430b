"""The soma classifier: features, the model file, the local correlation image."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.segment import classifier
from analysis.segment.somata import _correlation_image


def _rois(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "anatomical": rng.random(n) < 0.5,
        "area_px": rng.integers(20, 80, n),
        "compactness": rng.uniform(1, 1.5, n),
        "contrast": rng.uniform(0.7, 1.5, n),
        "blob_z": rng.normal(0, 3, n),
        "correlation_contrast": rng.normal(0, 0.1, n),
    }


def test_feature_matrix_columns_follow_the_feature_list():
    rois = _rois(5, np.random.default_rng(0))
    x = classifier.feature_matrix(rois, diameter_px=8.0)
    assert x.shape == (5, len(classifier.FEATURES))
    np.testing.assert_allclose(x[:, classifier.FEATURES.index("abs_blob_z")], abs(rois["blob_z"]))
    empty = classifier.feature_matrix({k: v[:0] for k, v in rois.items()}, diameter_px=8.0)
    assert empty.shape == (0, len(classifier.FEATURES))


def test_fit_then_probability_separates_the_classes(tmp_path):
    rng = np.random.default_rng(1)
    rois = _rois(400, rng)
    labels = rois["correlation_contrast"] + 0.02 * rng.normal(size=400) > 0
    model = classifier.fit(classifier.feature_matrix(rois, 8.0), labels, labels.sum(), {"seed": 1})
    path = tmp_path / "model.json"
    path.write_text(json.dumps(model))
    p = classifier.probability(classifier.load(str(path)), classifier.feature_matrix(rois, 8.0))
    assert ((p >= 0.5) == labels).mean() > 0.9
    assert 0 < model["threshold"] < 1 and model["training_f1"] > 0.9


def test_builtin_model_loads_and_a_stale_or_missing_one_says_what_to_do(tmp_path):
    model = classifier.load(classifier.BUILTIN)
    assert model["features"] == list(classifier.FEATURES)
    assert model["training"]["cohorts"]
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({**model, "features": ["area"]}))
    with pytest.raises(ValueError, match="retrain it"):
        classifier.load(str(stale))
    with pytest.raises(FileNotFoundError, match="train_classifier"):
        classifier.load(str(tmp_path / "none.json"))


def test_correlation_image_is_high_on_a_shared_signal_and_near_zero_on_noise():
    rng = np.random.default_rng(2)
    binned = rng.normal(100, 5, (300, 30, 30)).astype(np.float32)
    binned[:, 10:16, 10:16] += 10 * rng.normal(size=(300, 1, 1)).astype(np.float32)
    corr = _correlation_image(binned)
    assert corr[12:14, 12:14].min() > 0.7
    assert abs(np.median(corr)) < 0.05
