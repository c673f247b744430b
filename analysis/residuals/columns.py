"""The names of the SD tables' columns and of the options the residual fit takes."""

from __future__ import annotations

KINDS = ("coupled", "soma_only", "dendrite_only")
SOMATIC_KINDS = ("coupled", "soma_only")
EPOCH_REFERENCES = ("pre_onset", "at_onset")
SD_FITS = ("errors_in_variables", "ols")
SD_MODELS = ("auto", "linear", "quadratic")
SD_EVENT_COLUMNS = [
    "subject",
    "session",
    "soma_roi",
    "dendrite_roi",
    "kind",
    "frame",
    "time_s",
    "soma_amplitude",
    "dendrite_amplitude",
    "soma_noise_var",
    "soma_event_amplitude",
    "group",
    "target_id",
]
FIT_COLUMNS = [
    "subject",
    "soma_roi",
    "dendrite_roi",
    "n_events",
    "method",
    "model",
    "intercept",
    "slope",
    "curvature",
    "reliability",
    "soma_noise_sd",
    "r2",
    "residual_sd",
]
