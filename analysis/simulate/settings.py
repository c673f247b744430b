"""The simulator's settings (config section ``simulate``), presets and labels."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, ClassVar, Literal

import numpy as np

from analysis import cloose
from analysis.settings import StageSettings, require
from analysis.vocabulary import DEFAULT_CONDITION, NO_EPOCH, SIMULATED_NON_TARGET

GROUPS = ("P+", "P-", SIMULATED_NON_TARGET)
EPOCH_CODES = {NO_EPOCH: 0, "reduction": 1, "increase": -1}
#: ``planted_epoch`` -> the ``task_error`` column that carries the planted residual:
#: 'trend_before' (default) the error trend before each burst, which the burst cannot have
#: moved; 'centred' the per-frame epoch of a centred window (the definition before the
#: closed-loop confounds were handled; the imaging integration tests pin it so they keep
#: the realizations their thresholds were measured on).
PLANTED_EPOCH_COLUMN = {"trend_before": "trend_epoch", "centred": "epoch"}
CONTROL_CONDITION = DEFAULT_CONDITION
#: The realistic field's options with their off values (the grid of uniform disks and the
#: ideal photon counter before them); ``to_dict`` leaves them out while off.
REALISM_DEFAULTS: dict[str, Any] = {
    "soma_placement": "grid",
    "soma_overlap": 0.0,
    "soma_radius_range_px": (),
    "soma_brightness_spread": 1.0,
    "transient_brightness_exponent": 1.0,
    "ring_fraction": 0.0,
    "silent_fraction": 0.0,
    "out_of_focus_fraction": 0.0,
    "neuropil_grain_px": 0.0,
    "neuropil_grain_contrast": 0.0,
    "n_vessels": 0,
    "n_processes": 0,
    "n_puncta": 0,
    "punctum_photons": 0.15,
    "punctum_dff": 40.0,
    "punctum_rate_hz": 0.03,
    "border_somata": False,
    "photon_gain": 1.0,
    "photon_gain_cv": 0.0,
    "read_noise_sd": 0.0,
}
INHIBITION_SETTINGS = (
    "inhibited_subjects",
    "inhibition_condition",
    "inhibition_residual_removed",
    "inhibition_learning_factor",
    "opto_trial_fraction",
)


@dataclasses.dataclass(frozen=True)
class SimulateSettings(StageSettings):
    """Simulator settings (config section ``simulate``); realistic defaults, see PRESETS.

    Intensities are expected photons per pixel per volume; dF/F units are fractions.

    Edge cases (all off by default): ``motion_spikes`` entries ``(day index, frame,
    row px, col px)`` add a rigid shift to one frame of one day (a sudden movement);
    ``day_brightness[d]`` scales every photon rate of day index ``d`` (laser power,
    window clarity; days beyond the tuple keep 1); ``silent_targets`` entries ``(day
    index, target id)`` remove that target's somatic bursts on that day, and with them
    its coupled dendritic events.

    Dendritic inhibition (the NDNF+ experiment; off while ``inhibited_subjects`` is empty):
    subjects named in ``inhibited_subjects`` are in condition ``inhibition_condition``
    (the others in ``control``) and get the light (``opto`` = 1 in their BCI log) on every
    frame, or, with ``opto_trial_fraction`` < 1, on the whole frame block of that share of
    trials, drawn at random (interleaved light-on and light-off trials). Bursts on lit
    frames lose ``inhibition_residual_removed`` of their planted residual (1: abolished)
    and drive learning ``inhibition_learning_factor`` times as much (the planted residual
    before removal sets the drive, so the two effects are set apart).

    Realistic field (all off by default, see ``REALISM_DEFAULTS`` and the ``realistic``
    preset): ``soma_placement`` 'random' places somata at random with centres at least
    ``(1 - soma_overlap)`` times the sum of their radii apart (touching and overlapping
    neighbours), radii uniform in ``soma_radius_range_px`` (min, max), brightness
    log-uniform over a ``soma_brightness_spread``-fold range (targets in its upper half),
    its transient photons scaling as ``brightness ** transient_brightness_exponent`` (its
    resting light as brightness; 1: dF/F the same for every soma; 0: the same transient
    photons, so a soma bright at rest has small dF/F and a dim one large dF/F, as with
    GCaMP: cells filled with indicator are bright and respond little); ``ring_fraction``
    of somata are nucleus-excluded rings; ``silent_fraction`` and
    ``out_of_focus_fraction`` of the non-targets never burst, or are blurred and dimmer;
    ``neuropil_grain_px`` > 0 multiplies the neuropil by a fine log-normal texture of that
    correlation length and log-SD ``neuropil_grain_contrast``; ``n_vessels`` dark tubes
    shade background and neuropil of both planes; ``n_processes`` dendrites and axons of
    imaged neurons cross the soma plane with their owner's activity; ``n_puncta`` specks
    (boutons, thin processes of neurons not imaged: Gaussians of
    :data:`analysis.simulate.realism.PUNCTUM_SIGMA_PX`) lie off the somata with
    ``punctum_photons`` at rest at their centre, Poisson events at ``punctum_rate_hz`` of
    dF/F log-normal around ``punctum_dff``, decaying as a soma's; ``border_somata``
    fills the border band (``margin_px``, kept free so every target stays in view) with
    non-target somata at the interior's density, as a real field has cells up to its
    edge: on days the field moves, some leave it in part. The detector:
    ``photon_gain`` ADC counts per photon on average, single-photon pulse heights with
    coefficient of variation ``photon_gain_cv`` (gamma), Gaussian ``read_noise_sd`` counts,
    raw = clip(``raw_offset`` + pulses + read noise, 0, 65535).
    """

    section: ClassVar[str] = "simulate"

    n_subjects: int = 1
    n_days: int = 3
    n_rows: int = 256
    n_cols: int = 256
    n_frames: int = 3000
    fs_hz: float = 15.0
    n_neurons: int = 60
    n_pos_targets: int = 5
    n_neg_targets: int = 4
    n_distractor_dendrites: int = 15
    soma_radius_px: float = 4.0
    tuft_offset_px: float = 9.0
    segment_length_px: tuple[float, float] = (10.0, 22.0)
    max_motion_px: float = 6.0
    max_nonrigid_px: float = 1.5
    nonrigid_wavelength_px: float = 160.0
    max_day_shift_px: float = 15.0
    max_day_rotation_deg: float = 2.0
    neuropil_coefficient: float = 0.7
    photons_soma: float = 8.0
    photons_dendrite: float = 8.0
    photons_background: float = 1.0
    photons_neuropil: float = 2.0
    neuropil_fluctuation: float = 0.3
    neuropil_timescale_s: float = 5.0
    raw_offset: int = 0
    tau_rise_s: float = 0.07
    tau_decay_s: float = 0.7
    tau_dendrite_decay_s: float = 0.4
    burst_rate_hz: float = 0.25
    mean_burst_spikes: float = 2.5
    spike_dff: float = 0.3
    coupling_gain: float = 0.8
    coupling_gain_sd: float = 0.15
    coupling_intercept: float = 0.05
    coupling_exponent: float = 1.0
    coupling_gain_drift_sd: float = 0.0
    residual_amplitude: float = 0.35
    residual_noise_sd: float = 0.08
    increase_residual_factor: float = -1.0
    dendrite_only_rate_hz: float = 0.04
    dendrite_only_dff: tuple[float, ...] = (0.2, 0.8)
    learning_rate_per_day: float = 0.35
    null: bool = False
    baseline_frames: int = 15000
    calibration_trials: int = 200
    calibration_trial_frames: int = 435
    hit_fraction: float = 0.5
    max_trial_frames: int = 435
    epoch_smooth_s: float = 0.5
    epoch_window_s: float = 1.0
    epoch_gap_s: float = 0.3
    planted_epoch: Literal["trend_before", "centred"] = "trend_before"
    chunk_frames: int = 200
    motion_spikes: tuple[tuple[int, int, float, float], ...] = ()
    day_brightness: tuple[float, ...] = ()
    silent_targets: tuple[tuple[int, int], ...] = ()
    inhibited_subjects: tuple[str, ...] = ()
    inhibition_condition: str = "ndnf_opto"
    inhibition_residual_removed: float = 1.0
    inhibition_learning_factor: float = 0.25
    opto_trial_fraction: float = 1.0
    soma_placement: Literal["grid", "random"] = "grid"
    soma_overlap: float = 0.0
    soma_radius_range_px: tuple[float, ...] = ()
    soma_brightness_spread: float = 1.0
    transient_brightness_exponent: float = 1.0
    ring_fraction: float = 0.0
    silent_fraction: float = 0.0
    out_of_focus_fraction: float = 0.0
    neuropil_grain_px: float = 0.0
    neuropil_grain_contrast: float = 0.0
    n_vessels: int = 0
    n_processes: int = 0
    n_puncta: int = 0
    punctum_photons: float = 0.15
    punctum_dff: float = 40.0
    punctum_rate_hz: float = 0.03
    border_somata: bool = False
    photon_gain: float = 1.0
    photon_gain_cv: float = 0.0
    read_noise_sd: float = 0.0

    def __post_init__(self) -> None:
        self._check_counts_and_geometry()
        self._check_signals()
        self._check_edge_cases()
        self._check_realism()

    def _check_realism(self) -> None:
        """The realistic field's options and the detector."""
        require(
            self.soma_placement in ("grid", "random"),
            "simulate.soma_placement must be 'grid' or 'random'",
        )
        require(0 <= self.soma_overlap < 1, "simulate.soma_overlap must be in [0, 1)")
        require(self.n_puncta >= 0, "simulate.n_puncta must be >= 0")
        for name in ("punctum_photons", "punctum_dff", "punctum_rate_hz"):
            require(getattr(self, name) > 0, f"simulate.{name} must be > 0")
        require(
            self.soma_placement == "random" or self.soma_overlap == 0,
            "simulate.soma_overlap needs soma_placement 'random'",
        )
        radii = self.soma_radius_range_px
        require(
            not radii or (len(radii) == 2 and 2 <= radii[0] <= radii[1]),
            "simulate.soma_radius_range_px must be empty or (min, max) with 2 <= min <= max",
        )
        require(self.soma_brightness_spread >= 1, "simulate.soma_brightness_spread must be >= 1")
        for name in ("ring_fraction", "silent_fraction", "out_of_focus_fraction"):
            require(0 <= getattr(self, name) <= 1, f"simulate.{name} must be in 0..1")
        require(
            self.silent_fraction + self.out_of_focus_fraction <= 1,
            "simulate.silent_fraction + out_of_focus_fraction must be <= 1 (both are shares "
            "of the non-targets, drawn without overlap)",
        )
        require(self.neuropil_grain_px >= 0, "simulate.neuropil_grain_px must be >= 0")
        require(
            0 <= self.neuropil_grain_contrast <= 2,
            "simulate.neuropil_grain_contrast must be in 0..2 (log-SD)",
        )
        require(
            self.neuropil_grain_px > 0 or self.neuropil_grain_contrast == 0,
            "simulate.neuropil_grain_contrast needs neuropil_grain_px > 0",
        )
        for name in ("n_vessels", "n_processes"):
            require(getattr(self, name) >= 0, f"simulate.{name} must be >= 0")
        require(self.photon_gain > 0, "simulate.photon_gain must be > 0 (counts per photon)")
        require(0 <= self.photon_gain_cv <= 2, "simulate.photon_gain_cv must be in 0..2")
        require(self.read_noise_sd >= 0, "simulate.read_noise_sd must be >= 0")

    def _check_counts_and_geometry(self) -> None:
        """Counts, rate, soma size, motion and cross-day transforms, neuropil."""
        for name in ("n_subjects", "n_days", "n_frames", "n_neurons", "chunk_frames"):
            require(getattr(self, name) >= 1, f"simulate.{name} must be >= 1")
        require(self.n_pos_targets >= 1, "simulate.n_pos_targets must be >= 1")
        require(self.n_neg_targets >= 1, "simulate.n_neg_targets must be >= 1")
        require(
            self.n_pos_targets + self.n_neg_targets <= self.n_neurons,
            "simulate.n_pos_targets + n_neg_targets must be <= n_neurons",
        )
        require(self.n_distractor_dendrites >= 0, "simulate.n_distractor_dendrites must be >= 0")
        require(self.fs_hz > 0, "simulate.fs_hz must be > 0")
        require(self.soma_radius_px >= 2, "simulate.soma_radius_px must be >= 2")
        require(
            0 <= self.max_nonrigid_px < self.max_motion_px,
            "simulate.max_nonrigid_px must be in [0, max_motion_px)",
        )
        require(self.max_day_shift_px >= 0, "simulate.max_day_shift_px must be >= 0")
        require(
            0 <= self.max_day_rotation_deg <= 10,
            "simulate.max_day_rotation_deg must be in 0..10",
        )
        require(
            0 <= self.neuropil_coefficient <= 1, "simulate.neuropil_coefficient must be in 0..1"
        )

    def _check_signals(self) -> None:
        """Photon rates, time constants, bursts, the planted residual, epochs, the task."""
        for name in ("photons_soma", "photons_dendrite", "photons_background", "tau_rise_s"):
            require(getattr(self, name) > 0, f"simulate.{name} must be > 0")
        require(self.tau_decay_s > self.tau_rise_s, "simulate.tau_decay_s must exceed tau_rise_s")
        require(
            self.tau_dendrite_decay_s > self.tau_rise_s,
            "simulate.tau_dendrite_decay_s must exceed tau_rise_s",
        )
        require(self.mean_burst_spikes >= 1, "simulate.mean_burst_spikes must be >= 1")
        require(self.residual_amplitude >= 0, "simulate.residual_amplitude must be >= 0")
        low_high = self.dendrite_only_dff
        require(
            len(low_high) == 2 and 0 < low_high[0] <= low_high[1],
            "simulate.dendrite_only_dff must be (min, max) dF/F with 0 < min <= max",
        )
        require(0.5 <= self.coupling_exponent <= 2, "simulate.coupling_exponent must be in 0.5..2")
        require(self.coupling_gain_drift_sd >= 0, "simulate.coupling_gain_drift_sd must be >= 0")
        require(self.epoch_window_s > 0, "simulate.epoch_window_s must be > 0 seconds")
        require(self.epoch_gap_s >= 0, "simulate.epoch_gap_s must be >= 0 seconds")
        require(
            self.planted_epoch in ("trend_before", "centred"),
            "simulate.planted_epoch must be 'trend_before' or 'centred'",
        )
        require(
            -1 <= self.increase_residual_factor <= 1,
            "simulate.increase_residual_factor must be in -1..1",
        )
        require(0 < self.hit_fraction < 1, "simulate.hit_fraction must be in (0, 1)")
        require(
            1 <= self.calibration_trial_frames <= self.baseline_frames,
            "simulate.calibration_trial_frames must be in 1..baseline_frames",
        )

    def _check_edge_cases(self) -> None:
        """The edge-case options, inhibition and opto, dendrite segments, field of view."""
        for day, frame, _, _ in self.motion_spikes:
            require(
                0 <= day < self.n_days and 0 <= frame < self.n_frames,
                f"simulate.motion_spikes: (day {day}, frame {frame}) must index a simulated "
                f"day (0..{self.n_days - 1}) and frame (0..{self.n_frames - 1})",
            )
        require(
            len(self.day_brightness) <= self.n_days and all(b > 0 for b in self.day_brightness),
            "simulate.day_brightness must hold at most n_days factors, each > 0",
        )
        n_targets = self.n_pos_targets + self.n_neg_targets
        for day, target in self.silent_targets:
            require(
                0 <= day < self.n_days and 0 <= target < n_targets,
                f"simulate.silent_targets: (day {day}, target {target}) must index a simulated "
                f"day (0..{self.n_days - 1}) and target id (0..{n_targets - 1})",
            )
        subjects = {f"m{k + 1:02d}" for k in range(self.n_subjects)}
        require(
            set(self.inhibited_subjects) <= subjects,
            f"simulate.inhibited_subjects {sorted(set(self.inhibited_subjects) - subjects)} are "
            f"not simulated subjects (m01..m{self.n_subjects:02d})",
        )
        require(
            self.inhibition_condition != CONTROL_CONDITION
            and bool(re.fullmatch(r"[A-Za-z0-9_.-]+", self.inhibition_condition)),
            "simulate.inhibition_condition must be a name of letters, digits, '_', '-', '.' "
            f"other than '{CONTROL_CONDITION}'",
        )
        for name in ("inhibition_residual_removed", "inhibition_learning_factor"):
            require(0 <= getattr(self, name) <= 1, f"simulate.{name} must be in 0..1")
        require(0 < self.opto_trial_fraction <= 1, "simulate.opto_trial_fraction must be in (0, 1]")
        lo, hi = self.segment_length_px
        require(0 < lo <= hi, "simulate.segment_length_px must be (min, max) with 0 < min <= max")
        require(
            min(self.n_rows, self.n_cols) - 2 * self.margin_px >= 4 * self.max_soma_radius_px,
            f"simulate: field of view {self.n_rows}x{self.n_cols} px is too small for the "
            f"border margin of {self.margin_px:.1f} px (max_day_shift_px + rotation + "
            "max_motion_px + soma radius); enlarge n_rows/n_cols or reduce the shifts",
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict view without the edge-case options left at their defaults.

        Truth files record these settings: leaving unset options out keeps files
        simulated before the options existed identical when regenerated.
        """
        out = super().to_dict()
        for name in ("motion_spikes", "day_brightness", "silent_targets"):
            if not out[name]:
                del out[name]
        if not out["inhibited_subjects"]:
            for name in INHIBITION_SETTINGS:
                del out[name]
        for name, off in REALISM_DEFAULTS.items():
            if out[name] == off:
                del out[name]
        if tuple(out["dendrite_only_dff"]) == type(self).dendrite_only_dff:
            del out["dendrite_only_dff"]
        return out

    def condition_of(self, subject: str) -> str:
        """The experimental condition a simulated subject is in."""
        if subject in self.inhibited_subjects:
            return self.inhibition_condition
        return CONTROL_CONDITION

    @property
    def realistic_field(self) -> bool:
        """Whether any option of the realistic field (not the detector's) is on."""
        return any(
            getattr(self, name) != off
            for name, off in REALISM_DEFAULTS.items()
            if name not in ("photon_gain", "photon_gain_cv", "read_noise_sd")
        )

    @property
    def max_soma_radius_px(self) -> float:
        """The largest soma radius: ``soma_radius_range_px``'s max, else ``soma_radius_px``."""
        return max(self.soma_radius_range_px, default=self.soma_radius_px)

    @property
    def margin_px(self) -> float:
        """Border kept free of targets so every target stays in view on every day (and of
        all somata unless ``border_somata``)."""
        half = max(self.n_rows, self.n_cols) / 2
        rotation = half * np.sqrt(2) * np.deg2rad(self.max_day_rotation_deg)
        return self.max_day_shift_px + rotation + self.max_motion_px + self.max_soma_radius_px + 2

    @property
    def border_edge_px(self) -> float:
        """Closest a border-band soma's centre comes to the field's edge (``border_somata``):
        whole somata in view on the reference day."""
        return self.max_soma_radius_px + 1

    @property
    def task_params(self) -> cloose.TaskParams:
        """The CLOOSE task parameters used on every simulated day."""
        return cloose.TaskParams(max_trial_frames=self.max_trial_frames)


#: dF/F of the realistic field's transients over the other presets': somatic bursts, tuft
#: events, coupling intercept and the planted residual all scale by it, so the science
#: (residual against response) is unchanged while activity is as visible as in the real
#: movie: spike_dff 1.0 matches the neurofinder movie's local correlation image (p99 0.21,
#: benchmarks/simulator_realism.py, no labels read); 0.3 gave p99 0.045.
REALISTIC_DFF_SCALE = 1.0 / 0.3
#: Somatic dF/F of the ``realistic_dark`` preset over the realistic one's: its somata rest
#: dim while a burst brings as many photons, so dF/F is larger; its coupling gain shrinks
#: by the same factor, so tuft events, the residual and its noise stay the same.
REALISTIC_SOMA_DFF_SCALE = 7.0

PRESETS: dict[str, dict[str, Any]] = {
    # data_sample/: small enough to ship (<= 40 MB), long enough for trials and events
    "sample": {
        "n_rows": 104,
        "n_cols": 104,
        "n_frames": 950,
        "n_neurons": 40,
        "n_distractor_dendrites": 8,
        "soma_radius_px": 3.5,
        "max_motion_px": 4.0,
        "max_day_shift_px": 6.0,
        "nonrigid_wavelength_px": 84.0,
        "max_trial_frames": 120,
        "calibration_trial_frames": 120,
        "burst_rate_hz": 0.35,
    },
    # the validation cohort (issue: imaging stages to ground-truth quality)
    "validate": {"n_subjects": 3, "n_days": 5},
    # a field that looks like real recordings (benchmarks/simulator_realism.py matches its
    # photon counts, detector and neuropil to a neurofinder movie)
    "realistic": {
        "n_neurons": 90,
        "soma_radius_px": 5.0,
        "soma_radius_range_px": (3.5, 7.0),
        "soma_placement": "random",
        "soma_overlap": 0.3,
        "soma_brightness_spread": 5.0,
        # ring 0.1, no grain: the mean image's strong blobs (the anatomical detector's z >
        # 3 / 4 / 5, per 10,000 px) 13 / 4.3 / 1.1 against the neurofinder movie's 11.9 /
        # 6.8 / 2.4; ring 0.4 with grain 0.1 gave 8.7 / 1.4 / 0.4 (two seeds,
        # benchmarks/simulator_realism.py)
        "ring_fraction": 0.1,
        "silent_fraction": 0.2,
        "out_of_focus_fraction": 0.2,
        # the mean image's soma-scale texture nearer the neurofinder movie's (blob
        # contrast p25..p75 -0.055..0.039; six vessels and grain 0.25 gave -0.11..0.10,
        # now -0.079..0.051; benchmarks/simulator_realism.py)
        "n_vessels": 2,
        "n_processes": 60,
        # a real field has cells up to its edges; the 36 px band is half the field
        "border_somata": True,
        "spike_dff": 0.3 * REALISTIC_DFF_SCALE,
        "coupling_intercept": 0.05 * REALISTIC_DFF_SCALE,
        "residual_amplitude": 0.35 * REALISTIC_DFF_SCALE,
        "residual_noise_sd": 0.08 * REALISTIC_DFF_SCALE,
        "dendrite_only_dff": (0.2 * REALISTIC_DFF_SCALE, 0.8 * REALISTIC_DFF_SCALE),
        "photons_soma": 0.35,
        "photons_dendrite": 0.6,
        "photons_background": 0.1,
        "photons_neuropil": 0.6,
        "photon_gain": 115.0,
        "photon_gain_cv": 0.5,
        "read_noise_sd": 5.0,
        "raw_offset": 7,
    },
}


# The realistic field with dark somata, as the neurofinder movie's mean image shows them
# (benchmarks/simulator_realism.py, no labels read): somata rest dim and the neuropil they
# displace is bright, so most are dark disks (its dark blobs keep 0.69 of their surround's
# light, median) and its most active cells rest at 1.05 times their surround; bright
# somata (the upper part of a 30-fold spread) are few. Transients carry the same photons
# whatever a soma's resting light (exponent 0), so the somatic dF/F is larger
# (REALISTIC_SOMA_DFF_SCALE) and the coupling gain smaller by the same factor: tuft events,
# the residual and its noise are the realistic preset's. Not the validation default: the
# validation cohort stays the preset the detector's other defaults were chosen on; the
# dark-field contrast switch suits this one (README, "Dark somata").
PRESETS["realistic_dark"] = {
    **PRESETS["realistic"],
    # smaller, denser somata: the real mean image's blobs fit the detector's smallest size
    "n_neurons": 180,
    "soma_radius_px": 4.0,
    "soma_radius_range_px": (3.0, 5.0),
    "soma_brightness_spread": 30.0,
    "transient_brightness_exponent": 0.0,
    "photons_soma": 0.1,
    # the neuropil left inside a soma: at 0.7 (the extraction's coefficient) a soma with no
    # light of its own keeps 0.74 of its surround's, lighter than most real dark blobs
    "neuropil_coefficient": 0.5,
    # the neuropil's fine speckle; few visible processes, as in the real mean image
    "neuropil_grain_px": 1.0,
    "neuropil_grain_contrast": 0.08,
    "n_processes": 20,
    # specks with rare large events: the real movie's most active functional ROIs are
    # specks of 11 px whose events fade to a quarter 2 px out (simulator_realism.py)
    "n_puncta": 120,
    # sparser, larger events: the real movie's most active cells are more skewed
    "burst_rate_hz": 0.1,
    "spike_dff": 0.3 * REALISTIC_DFF_SCALE * REALISTIC_SOMA_DFF_SCALE,
    "coupling_gain": 0.8 / REALISTIC_SOMA_DFF_SCALE,
    "coupling_gain_sd": 0.15 / REALISTIC_SOMA_DFF_SCALE,
}


def settings_for(
    preset: Literal["sample", "validate", "realistic", "realistic_dark"], **overrides: Any
) -> SimulateSettings:
    """Settings of a named preset with overrides (validated)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}'; choose one of {sorted(PRESETS)}")
    return SimulateSettings.from_mapping({**PRESETS[preset], **overrides})
