"""Simulator, realistic field: placement, spreads, rings, flags, vessels, the detector."""

import numpy as np
import pytest
from scipy import ndimage

from analysis import simulate
from analysis.settings import ConfigError
from analysis.simulate import activity, realism, rendering

FIELD = {
    "n_rows": 112,
    "n_cols": 112,
    "n_neurons": 30,
    "n_pos_targets": 2,
    "n_neg_targets": 2,
    "n_distractor_dendrites": 2,
    "max_day_shift_px": 3.0,
    "max_motion_px": 3.0,
    "max_nonrigid_px": 1.0,
    "soma_placement": "random",
    "soma_overlap": 0.3,
    "soma_radius_range_px": (3.5, 7.0),
    "soma_brightness_spread": 5.0,
    "ring_fraction": 0.5,
    "silent_fraction": 0.3,
    "out_of_focus_fraction": 0.3,
    "n_vessels": 2,
    "n_processes": 10,
    "neuropil_grain_px": 1.5,
    "neuropil_grain_contrast": 0.3,
}


@pytest.fixture(scope="module")
def field():
    settings = simulate.SimulateSettings.from_mapping(FIELD)
    return settings, simulate.simulate_geometry(settings, rng=np.random.default_rng(4))


def test_random_somata_touch_and_overlap_within_bounds(field):
    settings, geom = field
    neurons = geom["neurons"]
    centres = neurons[["centroid_row", "centroid_col"]].to_numpy()
    r = neurons["radius_px"].to_numpy()
    dist = np.hypot(*(centres[:, None] - centres[None]).transpose(2, 0, 1))
    reach = r[:, None] + r[None]
    pairs = ~np.eye(len(r), dtype=bool)
    assert (dist[pairs] >= 0.7 * reach[pairs] - 1e-9).all()
    assert (dist[pairs] < reach[pairs]).sum() >= 2  # touching or overlapping neighbours
    assert 3.5 <= r.min() and r.max() <= 7.0 and r.max() - r.min() > 2
    b = neurons["brightness"].to_numpy()
    assert b.max() / b.min() <= 5 + 1e-9 and b.max() / b.min() > 2
    targets = neurons["target_id"] >= 0
    assert (neurons.loc[targets, "brightness"] >= 1).all()


def test_flags_spare_the_targets(field):
    _, geom = field
    neurons = geom["neurons"]
    targets = neurons["target_id"] >= 0
    assert not neurons.loc[targets, ["silent", "out_of_focus"]].any().any()
    assert not (neurons["silent"] & neurons["out_of_focus"]).any()
    assert neurons["silent"].sum() == round(0.3 * 26) == neurons["out_of_focus"].sum()
    assert (neurons.loc[neurons["silent"], "burst_rate_hz"] == 0).all()


def test_silent_cells_never_burst(field):
    settings, geom = field
    rates = geom["neurons"]["burst_rate_hz"].to_numpy()
    soma = activity.simulate_soma(
        geom, rates, n_frames=2000, settings=settings, rng=np.random.default_rng(0)
    )
    silent = geom["neurons"]["silent"].to_numpy()
    assert soma["spikes"][silent].sum() == 0 and soma["soma_calcium"][silent].max() == 0
    assert soma["spikes"][~silent].sum(axis=1).min() > 0


def test_rings_have_a_dark_centre_inside_a_whole_body():
    """A ring cell's light spares its nucleus; its body (the truth mask an annotator
    draws, and the neuropil it displaces) does not."""
    rng = np.random.default_rng(1)
    centre = np.array([20.0, 20.0])
    body, ring = realism.soma_shapes(centre, (41, 41), 6.0, rng, ring=True)
    disk = realism.soma_footprint(centre, (41, 41), 6.0, rng)
    assert ring[20, 20] < 0.1 < 0.5 < disk[20, 20]
    assert ring.max() == disk.max() == body.max() == 1
    assert body[20, 20] > 0.9  # the nucleus is inside the body's mask, not the ring's


def test_a_dim_soma_is_a_dark_disk_without_a_dark_outline():
    """Soft somata displace neuropil as far as their body reaches: a soma dimmer than the
    neuropil it displaces is darkest at its centre, not along a rim where a hard-edged
    displacement would remove neuropil that its soft edge does not replace."""
    settings = simulate.SimulateSettings.from_mapping(
        {
            **FIELD,
            "n_neurons": 6,
            "soma_overlap": 0.0,
            "ring_fraction": 0.0,
            "silent_fraction": 0.0,
            "out_of_focus_fraction": 0.0,
            "n_vessels": 0,
            "n_processes": 0,
            "neuropil_grain_px": 0.0,
            "neuropil_grain_contrast": 0.0,
            "photons_soma": 0.01,
            "photons_background": 1e-3,
        }
    )
    geom = simulate.simulate_geometry(settings, rng=np.random.default_rng(2))
    identity = {"shift_row": 0.0, "shift_col": 0.0, "rotation_deg": 0.0}
    static = simulate.session_geometry(geom, identity, settings=settings)["static"][0]
    others = geom["soma_fp"].sum(axis=0)
    for body in geom["soma_fp"]:
        alone = others - body == 0
        edge, core = alone & (body > 0.02) & (body < 0.3), alone & (body > 0.9)
        assert static[edge].mean() > static[core].mean()


def test_out_of_focus_cells_are_blurrier_and_dimmer(field):
    _, geom = field
    neurons = geom["neurons"]
    blurred = neurons["out_of_focus"].to_numpy()
    area = (geom["soma_fp"] > 0.2).sum(axis=(1, 2)) / neurons["radius_px"].to_numpy() ** 2
    assert area[blurred].min() > area[~blurred].max()
    soma_only = neurons["brightness"].to_numpy()
    peak = geom["soma_light"].max(axis=(1, 2)) / soma_only
    assert np.median(peak[blurred]) < 0.6 < np.median(peak[~blurred])


def test_vessels_shade_background_and_neuropil(field):
    settings, geom = field
    # the field's own shadows: draw_field draws the vessels first from the same seed
    clear = realism.vessel_transmission(settings, np.random.default_rng(4))
    core = clear < realism.VESSEL_TRANSMISSION + 0.05
    assert clear.min() == pytest.approx(realism.VESSEL_TRANSMISSION, abs=0.02)
    assert core.mean() > 0.02 and (clear > 0.99).mean() > 0.3
    for image in ("background", "neuropil"):
        kept = np.median(geom[image][:, core]) / np.median(geom[image][:, clear > 0.99])
        assert kept == pytest.approx(realism.VESSEL_TRANSMISSION, abs=0.15), image


def test_processes_add_light_outside_somata(field):
    _, geom = field
    outside = geom["soma_fp"].sum(axis=0) == 0
    extra = geom["soma_light"].sum(axis=0)[outside]
    assert (extra > 0.1).sum() > 50


def test_target_polygons_follow_each_radius(field):
    settings, geom = field
    polygons = simulate.target_polygons(
        geom, {"shift_row": 0.0, "shift_col": 0.0, "rotation_deg": 0.0}, settings=settings
    )
    neurons = geom["neurons"].set_index("neuron")
    for target in polygons:
        row = neurons.loc[target["neuron"]]
        poly = np.asarray(target["polygon"])
        spread = np.hypot(poly[:, 0] - row.centroid_row, poly[:, 1] - row.centroid_col)
        np.testing.assert_allclose(spread, row.radius_px + 0.5, atol=0.02)


def test_detector_mean_and_variance():
    settings = simulate.SimulateSettings.from_mapping(
        {"photon_gain": 100.0, "photon_gain_cv": 0.5, "read_noise_sd": 5.0, "raw_offset": 10}
    )
    rng = np.random.default_rng(0)
    photons = rng.poisson(2.0, size=(400, 400))
    raw = rendering.detect(photons, settings=settings, rng=rng).astype(float)
    assert abs(raw.mean() - (10 + 200)) < 2
    assert abs(raw.var() / (100**2 * 1.25 * 2 + 25) - 1) < 0.03
    ideal = rendering.detect(photons, settings=simulate.SimulateSettings(), rng=rng)
    np.testing.assert_array_equal(ideal, photons)


def test_realism_options_left_out_of_to_dict_when_off():
    assert not set(simulate.SimulateSettings().to_dict()) & set(simulate.REALISM_DEFAULTS)
    realistic = simulate.settings_for("realistic").to_dict()
    assert realistic["soma_placement"] == "random" and "photon_gain" in realistic


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("soma_placement", "hex", "soma_placement"),
        ("soma_radius_range_px", [5.0], "soma_radius_range_px"),
        ("soma_radius_range_px", [6.0, 4.0], "soma_radius_range_px"),
        ("soma_brightness_spread", 0.5, "soma_brightness_spread"),
        ("silent_fraction", 0.8, "silent_fraction \\+ out_of_focus_fraction"),
        ("neuropil_grain_contrast", 0.5, "needs neuropil_grain_px"),
        ("photon_gain", 0.0, "photon_gain"),
        ("soma_overlap", 1.0, "soma_overlap"),
    ],
)
def test_bad_realism_settings_rejected(key, value, match):
    base = {**FIELD, "out_of_focus_fraction": 0.3, "neuropil_grain_px": 0.0}
    if key != "neuropil_grain_contrast":
        base["neuropil_grain_contrast"] = 0.0
    with pytest.raises(ConfigError, match=match):
        simulate.SimulateSettings.from_mapping({**base, key: value})


def _small_realistic(**overrides):
    """The realistic preset on the small field of these tests, one day."""
    return simulate.settings_for(
        "realistic",
        **{k: FIELD[k] for k in ("n_rows", "n_cols", "n_neurons", "n_pos_targets")},
        n_neg_targets=2,
        n_days=1,
        baseline_frames=2000,
        max_day_shift_px=3.0,
        max_motion_px=3.0,
        max_nonrigid_px=1.0,
        max_trial_frames=60,
        calibration_trial_frames=60,
        **overrides,
    )


def test_realistic_subject_runs_small():
    settings = _small_realistic(n_frames=300)
    result = simulate.simulate_subject(settings, subject="m01", rng=np.random.default_rng(0))
    day = result["days"][0]
    frames = np.concatenate(list(simulate.render_plane(day, plane=0, settings=settings)))
    assert frames.shape == (300, 112, 112) and frames.dtype == np.uint16
    assert 50 < np.median(frames.mean(axis=0)) < 400  # raw counts, not photons


def test_dark_somata_preset_keeps_the_tuft_side_of_the_coupling():
    """The dark-somata preset's dim somata have larger dF/F per spike; the coupling gain
    shrinks by the same factor, so a burst drives the same tuft event."""
    dark, realistic = simulate.settings_for("realistic_dark"), simulate.settings_for("realistic")
    factor = dark.spike_dff / realistic.spike_dff
    assert factor > 1
    assert dark.coupling_gain * factor == pytest.approx(realistic.coupling_gain)
    assert dark.coupling_gain_sd * factor == pytest.approx(realistic.coupling_gain_sd)
    for name in ("coupling_intercept", "residual_amplitude", "residual_noise_sd"):
        assert getattr(dark, name) == getattr(realistic, name), name


def test_realistic_transients_scale_together():
    """Larger dF/F (to match a real movie's activity) keeps the residual against the
    response: every dF/F amplitude of the preset scales by one factor."""
    realistic, plain = simulate.settings_for("realistic"), simulate.SimulateSettings()
    scale = simulate.settings.REALISTIC_DFF_SCALE
    for name in ("spike_dff", "coupling_intercept", "residual_amplitude", "residual_noise_sd"):
        assert getattr(realistic, name) == pytest.approx(scale * getattr(plain, name)), name
    assert realistic.dendrite_only_dff == pytest.approx(
        [scale * v for v in plain.dendrite_only_dff]
    )
    settings = _small_realistic(n_frames=600, dendrite_only_rate_hz=0.5)
    events = simulate.simulate_subject(settings, subject="m01", rng=np.random.default_rng(0))[
        "days"
    ][0]["events"]
    coincident = events[events.kind == "coincident"]
    per_spike = coincident.soma_magnitude / coincident.n_spikes
    assert per_spike.between(0.8 * settings.spike_dff, 1.2 * settings.spike_dff).all()
    only = events[events.kind == "dendrite_only"].dendrite_magnitude
    assert len(only) and only.between(*settings.dendrite_only_dff).all()
    assert only.max() > 2 * max(plain.dendrite_only_dff)


def test_border_somata_fill_the_band_at_the_interiors_density():
    settings = simulate.SimulateSettings.from_mapping({**FIELD, "border_somata": True})
    geom = simulate.simulate_geometry(settings, rng=np.random.default_rng(4))
    neurons, dendrites = geom["neurons"], geom["dendrites"]
    centres = neurons[["centroid_row", "centroid_col"]].to_numpy()
    m, edge = settings.margin_px, settings.border_edge_px
    in_band = realism.in_border_band(centres, settings)
    assert (in_band == np.any((centres < m) | (centres > 111 - m), axis=1)).all()
    assert in_band.sum() == len(neurons) - settings.n_neurons > 0
    assert (neurons.loc[in_band, "target_id"] == -1).all()  # targets stay in view
    assert (centres >= edge - 1e-9).all() and (centres <= 111 - edge + 1e-9).all()
    interior = (111 - 2 * m) ** 2
    band = (111 - 2 * edge) ** 2 - interior
    assert in_band.sum() / band == pytest.approx(settings.n_neurons / interior, rel=0.1)
    # a band soma's tuft stays near it, not pushed into the interior
    tufts = dendrites.set_index("neuron").loc[neurons.loc[in_band, "neuron"]]
    assert np.median(tufts["offset_px"]) < 2 * settings.tuft_offset_px


def test_transients_can_carry_the_same_photons_whatever_the_resting_brightness():
    """Exponent 1: a soma's transients scale with its resting light (one dF/F for all);
    0: the same transient photons, so the dim soma has the larger dF/F."""
    identity = {"shift_row": 0.0, "shift_col": 0.0, "rotation_deg": 0.0}
    ratios = {}
    for exponent in (1.0, 0.0):
        settings = simulate.SimulateSettings.from_mapping(
            {**FIELD, "transient_brightness_exponent": exponent}
        )
        geom = simulate.simulate_geometry(settings, rng=np.random.default_rng(4))
        sgeom = simulate.session_geometry(geom, identity, settings=settings)
        rest = settings.photons_soma * geom["soma_light"].sum(axis=(1, 2))
        ratios[exponent] = sgeom["bright_fp"][0].sum(axis=(1, 2)) / rest
        brightness = geom["neurons"]["brightness"].to_numpy()
    np.testing.assert_allclose(ratios[1.0], 1.0, rtol=1e-5)
    np.testing.assert_allclose(ratios[0.0], 1.0 / brightness, rtol=1e-5)


@pytest.mark.parametrize(
    ("preset", "n_neurons", "dark_share"),
    [("realistic", 22, (0.0, 0.3)), ("realistic_dark", 45, (0.5, 1.0))],
)
def test_dark_somata_preset_rests_most_somata_below_their_neuropil(preset, n_neurons, dark_share):
    """The mean image of ``realistic_dark`` shows most in-focus somata as dark disks, as
    the neurofinder movie does; the ``realistic`` preset's are mostly bright."""
    settings = simulate.settings_for(preset, n_rows=128, n_cols=128, n_neurons=n_neurons)
    geom = simulate.simulate_geometry(settings, rng=np.random.default_rng(0))
    identity = {"shift_row": 0.0, "shift_col": 0.0, "rotation_deg": 0.0}
    static = simulate.session_geometry(geom, identity, settings=settings)["static"][0]
    occupied = geom["soma_fp"].sum(axis=0) > 0
    in_focus = ~geom["neurons"]["out_of_focus"].to_numpy()
    darker = []
    for body in geom["soma_fp"][in_focus]:
        ring = ndimage.binary_dilation(body > 0.02, iterations=3) & ~occupied
        if ring.sum() >= 10:
            darker.append(static[body > 0.5].mean() < static[ring].mean())
    assert len(darker) >= 15
    assert dark_share[0] <= np.mean(darker) <= dark_share[1], np.mean(darker)


def test_puncta_are_specks_off_the_somata_whose_events_stay_within_them():
    """Puncta (``n_puncta``) lie off every soma, their events light specks a few px
    across, centred where the session's coordinates put them."""
    settings = _small_realistic(n_frames=600, n_puncta=40, punctum_rate_hz=0.2)
    result = simulate.simulate_subject(settings, subject="m01", rng=np.random.default_rng(1))
    geometry, day = result["geometry"], result["days"][0]
    soma = geometry["soma_fp"].max(axis=0)
    at = np.round(geometry["puncta"]).astype(int)
    assert (soma[at[:, 0], at[:, 1]] < 2 * realism.PUNCTUM_MAX_SOMA).all()
    calcium = day["puncta_calcium"]
    assert calcium.shape == (40, 600) and (calcium.max(axis=1) > 0).mean() > 0.9
    # the brightest event of one punctum, in the soma plane without its shot noise
    k = int(np.argmax(calcium.max(axis=1)))
    frame = int(np.argmax(calcium[k]))
    static, _, _ = simulate.geometry.plane_components(day["sgeom"], 0)
    lit = day["sgeom"]["puncta_fp"][k].toarray().reshape(static.shape) * calcium[k, frame]
    centre = simulate.geometry.to_session_points(
        geometry["puncta"][k : k + 1], day["transform"], static.shape
    )[0]
    r, c = np.round(centre).astype(int)
    assert lit[r, c] == pytest.approx(lit.max(), rel=0.3)
    distance = np.hypot(*np.ogrid[-r : static.shape[0] - r, -c : static.shape[1] - c])
    assert lit[distance >= 4].max() < 0.01 * lit.max()
    # presets without puncta have none
    assert (
        "puncta_calcium"
        not in simulate.simulate_subject(
            _small_realistic(n_frames=300), subject="m01", rng=np.random.default_rng(1)
        )["days"][0]
    )


def test_the_analytic_online_f_sees_a_punctum_inside_a_target_polygon():
    """The rig's F computed without rendering (used to calibrate the task) carries the
    events of puncta inside a polygon, as the rendered frames do."""
    settings = _small_realistic(n_frames=300, n_puncta=4)
    result = simulate.simulate_subject(settings, subject="m01", rng=np.random.default_rng(1))
    day, geometry = result["days"][0], result["geometry"]
    # the specks moved onto the targets' somata
    targets = geometry["neurons"].query("target_id >= 0").sort_values("target_id")
    geometry["puncta"] = targets[["centroid_row", "centroid_col"]].to_numpy(float)
    sgeom = simulate.geometry.session_geometry(geometry, day["transform"], settings=settings)
    masks = simulate.geometry.polygon_masks(day["targets"], sgeom["static"].shape[1:])
    m = masks.reshape(len(masks), -1).astype(float)
    lit = np.asarray(sgeom["puncta_fp"] @ m.T).T.sum(axis=1) / m.sum(axis=1)
    n_frames = day["puncta_calcium"].shape[1]
    f = {}
    dff = settings.punctum_dff
    for level in (0.0, dff):
        soma = {
            "soma_calcium": day["soma_calcium"],
            "neuropil_trace": day["neuropil_trace"],
            "puncta_calcium": np.full((settings.n_puncta, n_frames), level),
        }
        f[level] = activity.analytic_online_f(
            sgeom, masks, soma, settings=settings, rng=np.random.default_rng(0)
        )
    added = (f[dff] - f[0.0]).mean(axis=1)
    expected = settings.photon_gain * lit * dff
    assert (expected > 20).all()  # counts: well above the noise's mean over 300 frames
    np.testing.assert_allclose(added, expected, rtol=0.1)
