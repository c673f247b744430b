"""The realistic field of view (options off by default, see ``SimulateSettings``): random
somata of spread sizes and brightness, rings, silent and out-of-focus cells, vessel
shadows, crossing processes and a grainy neuropil.

:func:`draw_field` gives the per-soma truth flags and light footprints that
:func:`analysis.simulate.geometry.simulate_geometry` uses in place of the grid of uniform
disks; it draws only when an option is on, so the grid path's draws keep their order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage, sparse

from analysis.simulate.settings import SimulateSettings

#: Ring cells: depth and squared width (in radii) of the dark nucleus (1 = black centre).
RING_NUCLEUS = (1.0, 0.3)
#: Out-of-focus cells: blur (in radii) and light kept.
OUT_OF_FOCUS_BLUR = 0.6
OUT_OF_FOCUS_LIGHT = 0.4
#: Vessel shadows: light kept at a vessel's core, diameter range (px). The neurofinder
#: movie's darkest 0.5 % of pixels keep 0.38 of their local background, the realistic
#: preset's 0.40 (benchmarks/simulator_realism.py, "shadow depth"); black cores (0.02,
#: six vessels) gave 0.13.
VESSEL_TRANSMISSION = 0.4
VESSEL_DIAMETER_PX = (5.0, 12.0)
#: Crossing processes: length range (px), light relative to the owner's soma.
PROCESS_LENGTH_PX = (30.0, 90.0)
PROCESS_LIGHT = 0.5


def _smooth_walk(
    start: np.ndarray, length_px: float, shape: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """Points (k, 2) of a gently curving path from ``start``, 0.5 px steps, kept in view."""
    heading = rng.uniform(0, 2 * np.pi)
    turns = np.cumsum(rng.normal(0, 0.05, int(length_px / 0.5)))
    steps = 0.5 * np.stack([np.sin(heading + turns), np.cos(heading + turns)], axis=1)
    points = start + np.cumsum(steps, axis=0)
    inside = np.all((points >= 0) & (points <= np.array(shape) - 1), axis=1)
    return points[inside]


def _path_image(points: np.ndarray, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """A path drawn as a Gaussian-profiled line, peak 1."""
    img = np.zeros(shape)
    if len(points):
        idx = np.round(points).astype(int)
        img[idx[:, 0], idx[:, 1]] = 1.0
    img = ndimage.gaussian_filter(img, sigma_px)
    return img / img.max() if img.max() > 0 else img


def vessel_transmission(settings: SimulateSettings, rng: np.random.Generator) -> np.ndarray:
    """Light kept (row, col) under ``n_vessels`` dark tubes crossing the field (1 = clear).

    Penetrating vessels run along the optical axis, so both planes share the shadows.
    """
    shape = (settings.n_rows, settings.n_cols)
    shade = np.zeros(shape)
    for _ in range(settings.n_vessels):
        start = rng.uniform([0, 0], np.array(shape) - 1)
        points = _smooth_walk(start, 2.0 * max(shape), shape, rng)
        if not len(points):
            continue
        radius = rng.uniform(*VESSEL_DIAMETER_PX) / 2
        tube = ndimage.distance_transform_edt(_path_image(points, shape, 0.5) < 0.5)
        shade = np.maximum(shade, 1.0 / (1.0 + np.exp((tube - radius) * 1.5)))
    return 1.0 - (1.0 - VESSEL_TRANSMISSION) * shade


def _place_random(
    radii: np.ndarray,
    clear: np.ndarray,
    settings: SimulateSettings,
    rng: np.random.Generator,
    *,
    placed: tuple[np.ndarray, np.ndarray] = (np.empty((0, 2)), np.empty(0)),
    border: bool = False,
) -> np.ndarray:
    """Centres (neuron, 2) at random, off vessels, at least ``(1 - soma_overlap) * (r_i +
    r_j)`` apart from each other and from the ``placed`` (centres, radii) (random
    sequential placement): inside the margin, or with ``border`` in the band between the
    margin and the field's edge (whole somata in view on the reference day)."""
    shape = np.array([settings.n_rows, settings.n_cols])
    m, edge = settings.margin_px, settings.border_edge_px
    lo, hi = (edge, shape - 1 - edge) if border else (m, shape - 1 - m)
    all_centres = np.concatenate([placed[0], np.empty((radii.size, 2))])
    all_radii = np.concatenate([placed[1], radii])
    k0 = len(placed[1])
    for k in range(k0, k0 + radii.size):
        r = all_radii[k]
        for _ in range(2000):
            c = rng.uniform(lo, hi)
            gap = np.hypot(*(all_centres[:k] - c).T) >= (1 - settings.soma_overlap) * (
                all_radii[:k] + r
            )
            if (
                (not border or in_border_band(c[None], settings)[0])
                and gap.all()
                and clear[int(round(c[0])), int(round(c[1]))] > 0.5
            ):
                all_centres[k] = c
                break
        else:
            raise ValueError(
                f"simulate: could not place soma {k + 1} of {all_radii.size} at random in a "
                f"{settings.n_rows}x{settings.n_cols} field; reduce n_neurons or the radii, "
                "or raise soma_overlap"
            )
    return all_centres[k0:]


def in_border_band(points: np.ndarray, settings: SimulateSettings) -> np.ndarray:
    """Whether each point (k, 2) lies outside the margin, in the border band."""
    far = np.array([settings.n_rows, settings.n_cols]) - 1 - settings.margin_px
    return np.any((points < settings.margin_px) | (points > far), axis=1)


def _border_count(settings: SimulateSettings) -> int:
    """Somata that fill the border band at the interior's density."""
    shape = np.array([settings.n_rows, settings.n_cols])
    interior = np.prod(shape - 1 - 2 * settings.margin_px)
    band = np.prod(shape - 1 - 2 * settings.border_edge_px) - interior
    return int(round(settings.n_neurons * band / interior))


def soma_shapes(
    centre: np.ndarray,
    shape: tuple[int, int],
    radius: float,
    rng: np.random.Generator,
    *,
    ring: bool = False,
    out_of_focus: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """A soft elliptical soma (row, col): its body (nucleus included: what it occupies and
    what an annotator draws) and its light (a dim nucleus; a dark one: a ring), both peak
    1 and blurred when out of focus."""
    rr, cc = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    a, b = radius * rng.uniform(0.85, 1.15, size=2)
    theta = rng.uniform(0, np.pi)
    dr, dc = rr - centre[0], cc - centre[1]
    u = (dr * np.cos(theta) + dc * np.sin(theta)) / a
    v = (-dr * np.sin(theta) + dc * np.cos(theta)) / b
    d = np.sqrt(u**2 + v**2)
    depth, width = RING_NUCLEUS if ring else (0.4, 0.18)
    body = 1.0 / (1.0 + np.exp(np.clip((d - 1.0) * 8.0, None, 50.0)))  # no overflow far out
    light = np.clip(body - depth * np.exp(-(d**2) / width), 0, None)
    out = []
    for fp in (body, light):
        if out_of_focus:
            fp = ndimage.gaussian_filter(fp, OUT_OF_FOCUS_BLUR * radius)
            fp = fp / fp.max()
        fp = np.where(fp < 0.02, 0.0, fp)
        out.append(fp / fp.max())
    return out[0], out[1]


def soma_footprint(
    centre: np.ndarray, shape: tuple[int, int], radius: float, rng: np.random.Generator
) -> np.ndarray:
    """The light of a soft elliptical soma with a dim nucleus (:func:`soma_shapes`)."""
    return soma_shapes(centre, shape, radius, rng)[1]


def _flags(
    n: int, is_target: np.ndarray, settings: SimulateSettings, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Silent and out-of-focus neurons: disjoint shares of the non-targets (targets are
    chosen by labs as visible, active cells)."""
    others = rng.permutation(np.flatnonzero(~is_target))
    n_silent = int(round(settings.silent_fraction * others.size))
    n_blur = int(round(settings.out_of_focus_fraction * others.size))
    silent, blurred = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    silent[others[:n_silent]] = True
    blurred[others[n_silent : n_silent + n_blur]] = True
    return silent, blurred


def draw_field(
    settings: SimulateSettings, *, n_targets: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Somata, their flags and light, processes and vessels of a realistic field.

    Returns
    -------
    dict
        ``centres`` (neuron, 2) px, ``target_idx`` (the first ``n_pos_targets`` are P+),
        ``flags`` (dict of per-neuron arrays: radius_px, brightness, ring, silent,
        out_of_focus), ``soma_fp`` (neuron, row, col) soma bodies peak 1, nucleus included
        (the truth masks' source and the neuropil they displace), ``soma_light`` (neuron,
        row, col) relative light of each neuron in the soma plane at rest (shape x
        brightness, dimmed when out of focus, plus its crossing processes),
        ``transient_scale`` (neuron,) the share of that light its transients carry
        (``brightness ** (transient_brightness_exponent - 1)``), ``transmission`` (row,
        col) vessel shadows (1 = clear).
    """
    shape = (settings.n_rows, settings.n_cols)
    n = settings.n_neurons
    transmission = vessel_transmission(settings, rng)
    lo, hi = settings.soma_radius_range_px or (settings.soma_radius_px,) * 2
    radii = rng.uniform(lo, hi, n)
    centres = _place_random(radii, transmission, settings, rng)
    # targets among the interior somata: labs pick cells that stay in view
    target_idx = rng.choice(n, n_targets, replace=False)
    if settings.border_somata:
        border_radii = rng.uniform(lo, hi, _border_count(settings))
        border_centres = _place_random(
            border_radii, transmission, settings, rng, placed=(centres, radii), border=True
        )
        radii = np.concatenate([radii, border_radii])
        centres = np.concatenate([centres, border_centres])
        n = radii.size
    is_target = np.isin(np.arange(n), target_idx)
    silent, blurred = _flags(n, is_target, settings, rng)
    half = np.log(settings.soma_brightness_spread) / 2
    brightness = np.exp(rng.uniform(np.where(is_target, 0.0, -half), half))
    ring = rng.random(n) < settings.ring_fraction
    shapes = [
        soma_shapes(c, shape, r, rng, ring=g, out_of_focus=b)
        for c, r, g, b in zip(centres, radii, ring, blurred, strict=True)
    ]
    body = np.stack([soma_body for soma_body, _ in shapes])
    shape_light = np.stack([soma_light for _, soma_light in shapes])
    light = shape_light * (brightness * np.where(blurred, OUT_OF_FOCUS_LIGHT, 1.0))[:, None, None]
    for _ in range(settings.n_processes):
        owner = int(rng.integers(n))
        # start at some soma, so processes cross somata
        start = centres[rng.integers(n)] + rng.normal(0, 3, 2)
        path = _smooth_walk(start, rng.uniform(*PROCESS_LENGTH_PX), shape, rng)
        width = rng.uniform(0.5, 0.9)
        light[owner] += PROCESS_LIGHT * brightness[owner] * _path_image(path, shape, width)
    return {
        "centres": centres,
        "target_idx": target_idx,
        "flags": {
            "radius_px": radii,
            "brightness": brightness,
            "ring": ring,
            "silent": silent,
            "out_of_focus": blurred,
        },
        "soma_fp": body,
        "soma_light": light,
        "transient_scale": brightness ** (settings.transient_brightness_exponent - 1.0),
        "transmission": transmission,
    }


#: A punctum's Gaussian SD, px: a bouton, or a thin process crossing the plane
PUNCTUM_SIGMA_PX = 1.2
#: ... and where it lies: off every soma body (below this share of the body's peak)
PUNCTUM_MAX_SOMA = 0.05


def place_puncta(
    settings: SimulateSettings, soma_fp: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Centres (punctum, 2), reference coords, of ``n_puncta`` specks off the somata.

    The real movie's most active functional ROIs are specks (median 11 px, their events
    gone 4 px out; ``benchmarks/simulator_realism.py``), not somata: boutons and thin
    processes of neurons not imaged, with rare large events."""
    free = soma_fp.max(axis=0) < PUNCTUM_MAX_SOMA
    if not free.any():  # a field packed with somata: specks anywhere
        free[:] = True
    free_rows, free_cols = np.nonzero(free)
    pick = rng.choice(free_rows.size, settings.n_puncta, replace=free_rows.size < settings.n_puncta)
    jitter = rng.uniform(-0.5, 0.5, (settings.n_puncta, 2))
    return np.stack([free_rows[pick], free_cols[pick]], axis=1) + jitter


def puncta_image(centres: np.ndarray, shape: tuple[int, int]) -> sparse.csr_matrix:
    """Puncta footprints, a Gaussian of peak 1 at each centre sampled at pixel centres, as a
    sparse (punctum, pixel) matrix (row-major pixels)."""
    reach = int(np.ceil(3 * PUNCTUM_SIGMA_PX))
    dr, dc = (d.ravel() for d in np.mgrid[-reach : reach + 1, -reach : reach + 1])
    rows = np.round(centres[:, :1]).astype(int) + dr
    cols = np.round(centres[:, 1:]).astype(int) + dc
    weight = np.exp(
        -((rows - centres[:, :1]) ** 2 + (cols - centres[:, 1:]) ** 2) / (2 * PUNCTUM_SIGMA_PX**2)
    )
    inside = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    owner = np.broadcast_to(np.arange(len(centres))[:, None], rows.shape)
    return sparse.csr_matrix(
        (weight[inside], (owner[inside], rows[inside] * shape[1] + cols[inside])),
        shape=(len(centres), shape[0] * shape[1]),
    )


def grain(settings: SimulateSettings, rng: np.random.Generator) -> np.ndarray:
    """Fine neuropil texture (row, col): log-normal, mean 1, correlation ``neuropil_grain_px``."""
    shape = (settings.n_rows, settings.n_cols)
    g = ndimage.gaussian_filter(rng.normal(size=shape), settings.neuropil_grain_px)
    g = (g - g.mean()) / (g.std() + 1e-12) * settings.neuropil_grain_contrast
    tex = np.exp(g)
    return tex / tex.mean()
