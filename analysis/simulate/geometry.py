"""Simulated field of view: somata, tuft dendrites, background and neuropil, target
polygons, and the cross-day transform of a session (see the package's conventions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from analysis.simulate import realism
from analysis.simulate.settings import SimulateSettings
from analysis.vocabulary import SIMULATED_NON_TARGET


def _place_somata(settings: SimulateSettings, rng: np.random.Generator) -> np.ndarray:
    """Soma centres (neuron, 2) in reference coords, >= 2 radii apart, inside the margin.

    A random subset of the cells of a grid over the usable field, each jittered within
    its cell: dense fields always succeed (random sequential placement jams above ~55%
    packing and then fails for some seeds).
    """
    m = settings.margin_px
    min_dist = 2.0 * settings.soma_radius_px
    extent = np.array([settings.n_rows - 1 - 2 * m, settings.n_cols - 1 - 2 * m])
    n_grid = np.ceil(np.sqrt(settings.n_neurons * extent / extent[::-1])).astype(int)
    spacing = extent / n_grid
    if spacing.min() < min_dist:
        raise ValueError(
            f"simulate: {settings.n_neurons} somata {min_dist:.1f} px apart do not fit in a "
            f"{settings.n_rows}x{settings.n_cols} field with margin {m:.1f} px; reduce "
            "n_neurons or soma_radius_px, or enlarge the field"
        )
    cells = rng.choice(n_grid.prod(), size=settings.n_neurons, replace=False)
    index = np.stack(np.unravel_index(cells, tuple(n_grid)), axis=1)
    jitter = rng.uniform(-0.5, 0.5, size=(settings.n_neurons, 2)) * (spacing - min_dist)
    return m + (index + 0.5) * spacing + jitter


def _tuft_footprint(
    start: np.ndarray,
    n_segments: int,
    shape: tuple[int, int],
    settings: SimulateSettings,
    rng: np.random.Generator,
    *,
    margin_px: float,
) -> np.ndarray:
    """Thin (2-3 px) branching segments grown as smooth random walks from ``start``, peak 1,
    kept ``margin_px`` from the field's edges."""
    m = margin_px
    points: list[np.ndarray] = []
    for k in range(n_segments):
        p = start.copy() if k == 0 else points[rng.integers(len(points))].copy()
        heading = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(*settings.segment_length_px)
        for _ in range(int(length / 0.5)):
            heading += rng.normal(0, 0.08)
            p = p + 0.5 * np.array([np.sin(heading), np.cos(heading)])
            p = np.clip(p, [m, m], [shape[0] - 1 - m, shape[1] - 1 - m])
            points.append(p)
    img = np.zeros(shape)
    idx = np.round(np.array(points)).astype(int)
    np.add.at(img, (idx[:, 0], idx[:, 1]), 1.0)
    img = ndimage.gaussian_filter(img, 0.7)
    fp = np.clip(img / (0.5 * img.max()), 0, 1)
    fp[fp < 0.1] = 0
    return fp


def _smooth_texture(
    shape: tuple[int, int], sigma_px: float, rng: np.random.Generator
) -> np.ndarray:
    """Positive smooth random texture with mean 1."""
    tex = ndimage.gaussian_filter(rng.normal(size=shape), sigma_px)
    tex = (tex - tex.mean()) / (tex.std() + 1e-12)
    return np.clip(1 + 0.35 * tex, 0.2, None)


def _tufts(
    centres: np.ndarray, settings: SimulateSettings, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """Tuft footprints (one per neuron, then the distractors) and their table rows."""
    shape = (settings.n_rows, settings.n_cols)
    n = len(centres)
    m = settings.margin_px
    # tufts of somata in the border band (border_somata) stay near them, in view
    in_band = realism.in_border_band(centres, settings)
    tuft_fp = []
    rows = []
    for k in range(n + settings.n_distractor_dendrites):
        start_margin = settings.border_edge_px if k < n and in_band[k] else m
        if k < n:
            angle = rng.uniform(0, 2 * np.pi)
            offset = settings.tuft_offset_px * rng.uniform(0.8, 1.5)
            start = centres[k] + offset * np.array([np.sin(angle), np.cos(angle)])
            start = np.clip(start, start_margin, np.array(shape) - 1 - start_margin)
        else:
            start = rng.uniform([m, m], [shape[0] - 1 - m, shape[1] - 1 - m])
        n_seg = int(rng.integers(1, 4))
        walk_margin = start_margin - settings.max_soma_radius_px
        fp = _tuft_footprint(start, n_seg, shape, settings, rng, margin_px=walk_margin)
        tuft_fp.append(fp)
        com = ndimage.center_of_mass(fp)
        rows.append(
            {
                "tuft": k,
                "neuron": k if k < n else -1,
                "n_segments": n_seg,
                "centroid_row": com[0],
                "centroid_col": com[1],
                "offset_px": float(np.hypot(*(np.array(com) - centres[k]))) if k < n else np.nan,
            }
        )
    return tuft_fp, rows


def simulate_geometry(settings: SimulateSettings, *, rng: np.random.Generator) -> dict[str, Any]:
    """Reference-day (day01) geometry of one subject.

    Returns
    -------
    dict
        ``neurons`` (DataFrame: neuron, group, target_id, centroid_row, centroid_col,
        tuft, coupling_gain, coupling_intercept, burst_rate_hz; with a realistic field also
        the flags radius_px, brightness, ring, silent (burst rate 0) and out_of_focus, see
        :func:`realism.draw_field`), ``dendrites`` (DataFrame: tuft, neuron (-1 =
        distractor of a non-imaged neuron), n_segments, centroid_row, centroid_col,
        offset_px), ``soma_fp`` (neuron, row, col) and ``tuft_fp`` (tuft, row, col)
        footprints peak 1, ``background`` (plane, row, col) and ``neuropil`` (plane, row,
        col) spatial images (photons at rest); with a realistic field also ``soma_light``
        (neuron, row, col), each neuron's relative light in the soma plane at rest, and
        ``transient_scale`` (neuron,), the share of it its transients carry; with
        ``n_puncta`` also ``puncta`` (punctum, 2), the specks' centres.
    """
    shape = (settings.n_rows, settings.n_cols)
    n_targets = settings.n_pos_targets + settings.n_neg_targets
    field = None
    if settings.realistic_field:
        field = realism.draw_field(settings, n_targets=n_targets, rng=rng)
    centres = field["centres"] if field else _place_somata(settings, rng)
    n = len(centres)
    target_idx = field["target_idx"] if field else rng.choice(n, n_targets, replace=False)
    groups = np.array([SIMULATED_NON_TARGET] * n, dtype=object)
    groups[target_idx[: settings.n_pos_targets]] = "P+"
    groups[target_idx[settings.n_pos_targets :]] = "P-"
    target_id = np.full(n, -1)
    target_id[np.sort(target_idx)] = np.arange(target_idx.size)
    if field:
        soma_fp = field["soma_fp"]
    else:
        soma_fp = np.stack(
            [realism.soma_footprint(c, shape, settings.soma_radius_px, rng) for c in centres]
        )
    tuft_fp, rows = _tufts(centres, settings, rng)
    neurons = pd.DataFrame(
        {
            "neuron": np.arange(n),
            "group": groups.astype(str),
            "target_id": target_id,
            "centroid_row": centres[:, 0],
            "centroid_col": centres[:, 1],
            "tuft": np.arange(n),
            "coupling_gain": np.clip(
                rng.normal(settings.coupling_gain, settings.coupling_gain_sd, n),
                0.25 * settings.coupling_gain,
                None,
            ),
            "coupling_intercept": settings.coupling_intercept * rng.uniform(0.5, 1.5, n),
            "burst_rate_hz": settings.burst_rate_hz * rng.lognormal(0, 0.3, n),
        }
    )
    occupied = np.stack([soma_fp.max(axis=0), np.max(tuft_fp, axis=0)])
    # a realistic field's soft somata and tufts displace neuropil as far as they reach, so
    # a dim soma is a dark disk, not a disk inside a dark outline
    occupied = np.clip(occupied, 0, 1) if field else (occupied > 0).astype(np.float64)
    background = np.stack([_smooth_texture(shape, 6, rng) for _ in range(2)])
    background *= settings.photons_background
    # Somata and dendrites displace neuropil, so an ROI sees ~coefficient x the surround.
    neuropil = np.stack([_smooth_texture(shape, 12, rng) for _ in range(2)])
    neuropil *= settings.photons_neuropil * (1 - (1 - settings.neuropil_coefficient) * occupied)
    out = {
        "neurons": neurons,
        "dendrites": pd.DataFrame(rows),
        "soma_fp": soma_fp.astype(np.float32),
        "tuft_fp": np.array(tuft_fp, dtype=np.float32),
        "background": background.astype(np.float32),
        "neuropil": neuropil.astype(np.float32),
    }
    if field:
        out.update(_realistic_images(field, out, settings, rng))
    if settings.n_puncta:
        out["puncta"] = realism.place_puncta(settings, soma_fp, rng)
    return out


def _realistic_images(
    field: dict[str, Any],
    geometry: dict[str, Any],
    settings: SimulateSettings,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The realistic field's flags in ``neurons`` (silent ones never burst), its soma
    light, and background and neuropil under the vessels' shadows, the neuropil grainy."""
    neurons = geometry["neurons"]
    for name, values in field["flags"].items():
        neurons[name] = values
    neurons.loc[neurons["silent"], "burst_rate_hz"] = 0.0
    shade = field["transmission"][None]
    neuropil = geometry["neuropil"] * shade
    if settings.neuropil_grain_px > 0:
        neuropil *= np.stack([realism.grain(settings, rng) for _ in range(2)])
    return {
        "soma_light": field["soma_light"].astype(np.float32),
        "transient_scale": field["transient_scale"].astype(np.float32),
        "background": (geometry["background"] * shade).astype(np.float32),
        "neuropil": neuropil.astype(np.float32),
    }


def draw_day_transform(
    settings: SimulateSettings, *, day_index: int, rng: np.random.Generator
) -> dict[str, float]:
    """Cross-day transform (reference -> session coords); identity for day01."""
    if day_index == 0:
        return {"shift_row": 0.0, "shift_col": 0.0, "rotation_deg": 0.0}
    shift = rng.uniform(-1, 1, size=2) * settings.max_day_shift_px
    return {
        "shift_row": float(shift[0]),
        "shift_col": float(shift[1]),
        "rotation_deg": float(rng.uniform(-1, 1) * settings.max_day_rotation_deg),
    }


def to_session_coords(images: np.ndarray, transform: dict[str, float]) -> np.ndarray:
    """Resample reference-coordinate images (..., row, col) into session coordinates.

    Bilinear (order 1); the inverse map ``p_ref = R(-a) (p_s - center - shift) + center``
    is evaluated for every session pixel (see the module's convention).
    """
    a = np.deg2rad(transform["rotation_deg"])
    rot_inv = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    shape = images.shape[-2:]
    centre = (np.array(shape) - 1) / 2
    shift = np.array([transform["shift_row"], transform["shift_col"]])
    offset = centre - rot_inv @ (centre + shift)
    flat = images.reshape(-1, *shape)
    out = np.stack(
        [
            ndimage.affine_transform(im, rot_inv, offset=offset, order=1, mode="constant")
            for im in flat
        ]
    )
    return out.reshape(images.shape).astype(images.dtype)


def to_session_points(
    points: np.ndarray, transform: dict[str, float], shape: tuple[int, int]
) -> np.ndarray:
    """Points (n, 2) in reference coords moved to a session's raw coords: rotated about
    the field's centre, then shifted (the inverse of :func:`to_session_coords`' mapping)."""
    a = np.deg2rad(transform["rotation_deg"])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    centre = (np.array(shape) - 1) / 2
    shift = np.array([transform["shift_row"], transform["shift_col"]])
    return (np.asarray(points, float) - centre) @ rot.T + centre + shift


def target_polygons(
    geometry: dict[str, Any], transform: dict[str, float], *, settings: SimulateSettings
) -> list[dict[str, Any]]:
    """Online target polygons (16-gons around each target soma) in session raw coords."""
    neurons = geometry["neurons"]
    targets = neurons[neurons.group != SIMULATED_NON_TARGET].sort_values("target_id")
    centres = to_session_points(
        targets[["centroid_row", "centroid_col"]].to_numpy(float),
        transform,
        (settings.n_rows, settings.n_cols),
    )
    phi = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    out = []
    for row, c in zip(targets.itertuples(), centres, strict=True):
        radius = getattr(row, "radius_px", settings.soma_radius_px) + 0.5
        poly = c + radius * np.stack([np.sin(phi), np.cos(phi)], axis=1)
        out.append(
            {
                "id": int(row.target_id),
                "group": row.group,
                "plane": 0,
                "neuron": int(row.neuron),
                "polygon": np.round(poly, 2).tolist(),
            }
        )
    return out


def polygon_masks(polygons: Sequence[dict[str, Any]], shape: tuple[int, int]) -> np.ndarray:
    """Boolean masks (target, row, col) of polygons given as [[row, col], ...]."""
    from skimage.draw import polygon as draw_polygon

    masks = np.zeros((len(polygons), *shape), dtype=bool)
    for k, target in enumerate(polygons):
        poly = np.asarray(target["polygon"], dtype=float)
        rr, cc = draw_polygon(poly[:, 0], poly[:, 1], shape=shape)
        masks[k, rr, cc] = True
    return masks


def plane_components(
    session_geometry: dict[str, Any], plane: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Static image, footprints (unit, row, col) x brightness, and neuropil image."""
    return (
        session_geometry["static"][plane],
        session_geometry["bright_fp"][plane],
        session_geometry["neuropil"][plane],
    )


def session_geometry(
    geometry: dict[str, Any],
    transform: dict[str, float],
    *,
    settings: SimulateSettings,
    brightness: float = 1.0,
) -> dict[str, Any]:
    """Geometry of one session in its raw coordinates (footprints, static images, masks).

    ``brightness`` scales every photon rate (not the masks): a dimmer or brighter day.
    With puncta, ``puncta_fp`` (sparse (punctum, pixel), photons at rest) is their light
    that scales with their dF/F; their resting light is in ``static``'s soma plane.
    """
    soma_fp = to_session_coords(geometry["soma_fp"], transform)
    soma_light = (
        to_session_coords(geometry["soma_light"], transform)
        if "soma_light" in geometry
        else soma_fp
    )
    tuft_fp = to_session_coords(geometry["tuft_fp"], transform)
    background = brightness * to_session_coords(geometry["background"], transform)
    neuropil = brightness * to_session_coords(geometry["neuropil"], transform)
    rest = [
        brightness * settings.photons_soma * soma_light,
        brightness * settings.photons_dendrite * tuft_fp,
    ]
    static = background + neuropil + np.stack([b.sum(axis=0) for b in rest])
    # the light that scales with each unit's dF/F
    bright = list(rest)
    if "transient_scale" in geometry:
        bright[0] = rest[0] * geometry["transient_scale"][:, None, None]
    out = {
        "soma_mask": np.where(soma_fp > 0.2, soma_fp, 0).astype(np.float32),
        "dendrite_mask": np.where(tuft_fp > 0.3, tuft_fp, 0).astype(np.float32),
        "static": static.astype(np.float32),
        "bright_fp": [b.astype(np.float32) for b in bright],
        "neuropil": neuropil.astype(np.float32),
    }
    if "puncta" in geometry:
        shape = static.shape[1:]
        centres = to_session_points(geometry["puncta"], transform, shape)
        puncta = brightness * settings.punctum_photons * realism.puncta_image(centres, shape)
        out["static"][0] += np.asarray(puncta.sum(axis=0), np.float32).reshape(shape)
        out["puncta_fp"] = puncta.astype(np.float32)
    return out
