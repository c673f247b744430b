"""suite2p 1.1.0 soma detection run by hand, for ``realdata.py``'s same-run comparison.

Each variant runs suite2p's own ``detection_wrapper`` on the movie the pipeline gets, with
suite2p's default settings except the named change, as ``run_s2p`` would (diameter
``[12, 12]``, ``tau`` 1 s, the movie's frame rate, CPU). The classifier variant adds what
``run_s2p`` does after detection: extraction, the skewness of F - 0.7 Fneu, and the
classifier suite2p ships (``classifiers/classifier.npy``).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

#: variant name -> changes to suite2p's ``settings["detection"]`` (sub-dicts merged)
VARIANTS: dict[str, dict] = {
    "suite2p defaults": {},
    "suite2p sourcery": {"algorithm": "sourcery"},
    "suite2p threshold_scaling 0.5": {"threshold_scaling": 0.5},
    "suite2p threshold_scaling 2": {"threshold_scaling": 2.0},
}
CLASSIFIED = "suite2p defaults, classifier cells"


def _detection_settings(changes: dict) -> dict:
    from suite2p import default_settings

    detection = copy.deepcopy(default_settings()["detection"])
    for key, value in changes.items():
        if isinstance(value, dict):
            detection[key] = {**detection[key], **value}  # suite2p merges shallowly
        else:
            detection[key] = value
    return detection


def _stat_masks(stat, shape: tuple[int, int]) -> np.ndarray:
    masks = np.zeros((len(stat), *shape), np.float32)
    for k, s in enumerate(stat):
        masks[k, s["ypix"], s["xpix"]] = s["lam"]
    return masks


def _classifier_cells(stat, movie: np.ndarray, device) -> np.ndarray:
    """``run_s2p``'s classification: builtin classifier on skew, npix_norm, compact."""
    import suite2p
    from scipy.stats import skew
    from suite2p import default_settings
    from suite2p.classification import classify
    from suite2p.extraction import extract

    settings = default_settings()["extraction"]
    f, fneu, _, _ = extract.extraction_wrapper(stat, movie, settings=settings, device=device)
    skewness = skew(f - settings["neuropil_coefficient"] * fneu, axis=1)
    for s, value in zip(stat, skewness, strict=True):
        s["skew"] = value
    classfile = Path(suite2p.__file__).parent / "classifiers" / "classifier.npy"
    return classify(stat, classfile=classfile)[:, 0].astype(bool)


def detect_variants(movie: np.ndarray, fs_hz: float, threads: int) -> dict[str, np.ndarray]:
    """Masks (roi, row, col) of every variant, plus the default run's classified cells."""
    import torch
    from suite2p import default_settings
    from suite2p.detection import detect

    torch.set_num_threads(threads)
    device = torch.device("cpu")
    defaults = default_settings()
    diameter = np.asarray(defaults["diameter"], float)  # sourcery indexes it per axis
    out = {}
    for name, changes in VARIANTS.items():
        _, stat, _ = detect.detection_wrapper(
            movie,
            diameter=diameter,
            tau=defaults["tau"],
            fs=fs_hz,
            settings=_detection_settings(changes),
            device=device,
        )
        out[name] = _stat_masks(stat, movie.shape[1:])
        if not changes:
            out[CLASSIFIED] = out[name][_classifier_cells(stat, movie, device)]
    return out
