"""The export stage's settings (config section ``export``), its inputs (PlaneResults,
SessionResults) and the NWB metadata vocabulary.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from analysis.settings import StageSettings, require

SUBJECT_FIELDS = (
    "species",
    "sex",
    "age",
    "date_of_birth",
    "strain",
    "genotype",
    "description",
    "weight",
)
SEXES = ("M", "F", "U", "O")
#: nwbinspector importance levels a written file may still have
ALLOWED_IMPORTANCE = ("BEST_PRACTICE_SUGGESTION",)
PLACEHOLDER_DATE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
KEYWORDS = (
    "brain-computer interface",
    "two-photon calcium imaging",
    "apical tuft dendrites",
    "layer 5 pyramidal neurons",
    "instructive signals",
)
DURATION_PATTERN = re.compile(
    r"P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
    r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?"
)
WEIGHT_PATTERN = re.compile(r"\d+(\.\d+)? ?(kg|g|mg)")
NWB_COMPRESSION = {"compression": "gzip", "compression_opts": 4}


def is_age(text: str) -> bool:
    """ISO 8601 duration, or a range ``lower/upper`` of them with either side blank."""
    if DURATION_PATTERN.fullmatch(text):
        return True
    if text.count("/") != 1:
        return False
    lower, upper = text.split("/")
    return bool(lower or upper) and all(
        not s or DURATION_PATTERN.fullmatch(s) for s in (lower, upper)
    )


@dataclasses.dataclass(frozen=True)
class ExportSettings(StageSettings):
    """Settings of the export stage (config section ``export``).

    Attributes
    ----------
    subject_species : str
        Latin binomial of subjects whose ``subject.yaml`` does not give one.
    subject_sex : {"M", "F", "U", "O"}
        Sex of subjects without ``subject.yaml`` (U: unknown).
    subject_age : str
        ISO 8601 duration or range of subjects without ``subject.yaml`` age or birth
        date; the default "P0D/" says "unknown" (0 days or older).
    subject_strain, subject_genotype : str or None
        Strain and genotype of subjects without them in ``subject.yaml``.
    lab, institution, experimenter : str or None
        NWB file metadata; None leaves the field out.
    indicator : str
        Calcium indicator of every imaging plane.
    brain_area : str
        Imaging location: a name or acronym of the Allen mouse brain atlas (CCF).
    excitation_lambda_nm, emission_lambda_nm : float
        Excitation and emission wavelengths, nm.
    pixel_size_um : float or None
        Pixel pitch, micrometres (the planes' grid spacing); None: unknown, left out.
    correlation_batch_frames : int
        Frames read per batch when computing suite2p's correlation map (``Vcorr``).
    """

    section = "export"

    subject_species: str = "Mus musculus"
    subject_sex: Literal["M", "F", "U", "O"] = "U"
    subject_age: str = "P0D/"
    subject_strain: str | None = None
    subject_genotype: str | None = None
    lab: str | None = None
    institution: str | None = None
    experimenter: str | None = None
    indicator: str = "GCaMP"
    brain_area: str = "Retrosplenial area"
    excitation_lambda_nm: float = 920.0
    emission_lambda_nm: float = 510.0
    pixel_size_um: float | None = None
    correlation_batch_frames: int = 500

    def __post_init__(self) -> None:
        require(
            bool(self.subject_species.strip()),
            "export.subject_species must name a species, e.g. 'Mus musculus'",
        )
        require(
            is_age(self.subject_age),
            f"export.subject_age must be an ISO 8601 duration such as 'P90D' or a range "
            f"such as 'P60D/P90D' ('P0D/' for unknown), got {self.subject_age!r}",
        )
        require(bool(self.indicator.strip()), "export.indicator must not be empty")
        require(bool(self.brain_area.strip()), "export.brain_area must not be empty")
        require(
            self.excitation_lambda_nm > 0 and self.emission_lambda_nm > 0,
            "export.excitation_lambda_nm and emission_lambda_nm must be > 0 (nm)",
        )
        require(
            self.pixel_size_um is None or self.pixel_size_um > 0,
            f"export.pixel_size_um must be > 0 or null, got {self.pixel_size_um}",
        )
        require(
            self.correlation_batch_frames >= 1,
            f"export.correlation_batch_frames must be >= 1, got {self.correlation_batch_frames}",
        )


@dataclasses.dataclass(frozen=True)
class PlaneResults:
    """One plane of one session, as the pipeline saved it.

    Attributes
    ----------
    plane : int
        Plane index.
    role : {"soma", "dendrite"}
        The plane's role from ``session.yaml``.
    masks : xarray.DataArray (roi, row, col)
        Tracked masks in this session's registered frame (``session_masks`` of
        ``results/track/<subject>/plane<k>/rois.nc``), float32 weights; optional per-roi
        coordinate ``n_sessions_detected``.
    traces : xarray.Dataset
        ``extract`` output: ``F``, ``Fneu``, ``dff``, ``spikes`` ``(roi, time)``, same
        roi ids as ``masks``; attr ``settings`` (JSON) with ``neuropil_coefficient``.
    events : pandas.DataFrame
        ``extract`` events: ``roi, frame, peak_frame, time_s, amplitude`` (optionally
        ``peak_dff``, ``noise_sd``).
    registration : xarray.Dataset
        ``register`` output (summary images, shifts, ``valid_row_range`` /
        ``valid_col_range`` attrs).
    detected : numpy.ndarray of bool (roi,)
        Whether segmentation found the ROI in this session (``assignments.tsv``).
    """

    plane: int
    role: str
    masks: xr.DataArray
    traces: xr.Dataset
    events: pd.DataFrame
    registration: xr.Dataset
    detected: np.ndarray

    @property
    def name(self) -> str:
        """Container name in the NWB file, e.g. ``SomaPlane0``."""
        return f"{self.role.capitalize()}Plane{self.plane}"


@dataclasses.dataclass(frozen=True)
class SessionResults:
    """One session's results across planes.

    Attributes
    ----------
    subject, session : str
    fs_hz : float
        Volume rate, Hz.
    planes : tuple of PlaneResults
    soma_plane, dendrite_plane : int or None
        Planes that ``targets`` and ``pairs`` refer to (the subject's first plane of
        each role, as the pipeline uses them).
    bci_frames : pandas.DataFrame
        The ingested per-volume BCI log (``frame``, ``trial``, ``readout``,
        ``angle_deg``, ``reward``, ``aversive``; optional ``licks``, ``opto``,
        ``shift_row``, ``shift_col``).
    bci_meta : mapping
        ``threshold``, ``failure_bound``, ``target_angle_deg``, ``max_trial_frames``.
    trials : pandas.DataFrame
        ``bci`` trials table.
    task_error : pandas.DataFrame
        ``bci`` frames table: ``frame, trial, error, error_derivative, epoch``.
    targets : pandas.DataFrame
        ``map_targets`` table: ``target_id, group, roi, iou``.
    pairs : pandas.DataFrame
        ``pair`` table: ``soma_roi, dendrite_roi, corr, p_value, paired``.
    raw_sha256 : mapping of str to str
        Raw file -> sha256, from ingest (names the file's raw data).
    """

    subject: str
    session: str
    fs_hz: float
    planes: tuple[PlaneResults, ...]
    soma_plane: int | None
    dendrite_plane: int | None
    bci_frames: pd.DataFrame
    bci_meta: Mapping[str, Any]
    trials: pd.DataFrame
    task_error: pd.DataFrame
    targets: pd.DataFrame
    pairs: pd.DataFrame
    raw_sha256: Mapping[str, str]
