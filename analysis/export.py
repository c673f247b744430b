"""Export stage: one NWB file per session and suite2p-compatible plane folders.

Contract (docs/contracts.md "export.py"):

- Input: one session's finished results, gathered by the rule scripts into a
  :class:`SessionResults` (BCI log and meta, trials, task-error frames, target mapping,
  soma-dendrite pairs) holding one :class:`PlaneResults` per imaging plane (tracked masks
  in this session's registered frame, ``extract`` traces and events, ``register``
  summary images).
- :func:`build_nwb` -> :class:`pynwb.NWBFile`; :func:`write_nwb` writes it atomically;
  :func:`inspect_nwb` runs nwbinspector on the written file and
  :func:`check_inspection` refuses any finding worse than a best-practice suggestion.
- :func:`compute_correlation_image` (streamed over a registered movie) and
  :func:`compute_suite2p_plane` -> the arrays and dicts of a suite2p 1.1.0 plane folder;
  :func:`write_suite2p_plane` saves them.
- Trial-aligned data are not repeated here: ``results/bci/<subject>/<session>/
  aligned_{start,reward,failure}.nc`` already are self-describing NetCDF
  ``(trial, roi, lag)``.

Unlike the other stages this module writes files itself: NWB and suite2p's ``.npy`` are
products for other tools, never read back by the pipeline, so they stay out of
:mod:`analysis.io` (which holds the contracts between stages).

NWB layout
----------
``processing/ophys``: ``ImageSegmentation`` with one ``PlaneSegmentation`` per plane
named ``<Role>Plane<k>`` (``SomaPlane0``, ``DendritePlane1``); table ids are the
pipeline's tracked ROI ids (stable across days, per plane). ``image_mask`` is
``(roi, row, col)``: the ROI's float weights on the pixel grid of *this session's
registered movie* (the frame of ``register``'s mean image, same as
``results/track/.../rois.nc`` ``session_masks``); the raw frame differs from it only by
the per-frame motion shifts in ``registration.nc``. ROI columns: ``detected`` (found by
segmentation this day; False: the consensus mask from other days), ``n_sessions_detected``,
and on the soma plane ``target_group`` ("P+", "P-", "non-target"), ``target_id``,
``target_iou``, ``paired_dendrite_ids`` and ``pairing_p_values`` (ragged, ids in the
dendrite plane's table); on the dendrite plane ``paired_soma_id`` (-1: none),
``pairing_p_value``, ``pairing_corr`` and ``target_group`` (its paired soma's group).
``Fluorescence`` (F), ``Neuropil`` (Fneu), ``DfOverF`` (dF/F) and ``Deconvolved``
(OASIS spikes) hold one ``RoiResponseSeries`` per plane, data ``(time, roi)``;
``Events<Role>Plane<k>`` tables list the detected events with amplitudes;
``SummaryImages<Role>Plane<k>`` hold the mean, max, enhanced-mean and reference images.
``processing/behavior``: ``BehavioralTimeSeries`` ``BCI`` with per-volume ``readout``,
``grating_angle``, ``reward_ttl``, ``aversive_ttl``, ``task_error``,
``task_error_derivative`` (and ``licks``, ``opto``, ``online_shift`` when logged), and the
table ``BCITaskParameters`` (rows ``parameter``, ``value``, ``meaning``: threshold,
failure_bound, target_angle_deg, max_trial_frames). With the trials table these are the
BCI log that :func:`analysis.ingest.convert_nwb_bci_log` reads back from an NWB session.
``events``: ``reward`` and ``aversive`` ``EventsTable`` (one row per TTL). ``trials``:
start/stop, outcome, reward/aversive times, time to outcome, active period, frame
indices. ``intervals/task_error_epochs``: the error-reduction and error-increase epochs.

Time: every series starts at the time of imaging volume 0, which is the session start
time; volume ``n`` is at ``n / fs_hz`` seconds (all planes of a volume share its time).
A trial's ``stop_time`` is the end of its last volume, ``(end_frame + 1) / fs_hz``.

Session start time (:func:`compute_session_start_time`), in this order: the
``session_start_time`` field of ``session.yaml`` (ISO 8601 with a UTC offset, or a date);
a date in the session name (``YYYY-MM-DD`` or ``YYYYMMDD``, midnight UTC); else a
placeholder: 2000-01-01 UTC plus ``N - 1`` days for a session named ``dayN``, plain
2000-01-01 otherwise. The file's ``notes`` say which was used.

Subject (:func:`compute_subject`): ``subject.yaml`` beside the subject's session folders
(``species``, ``sex``, ``age``, ``date_of_birth``, ``strain``, ``genotype``,
``description``, ``weight``), falling back to the ``subject_*`` export settings.

suite2p folder
--------------
``stat.npy`` (one dict per ROI: ``ypix``, ``xpix``, ``lam`` from the mask weights, then
suite2p's own ``roi_stats`` and ``assign_overlaps``: ``med``, ``npix``, ``radius``,
``aspect_ratio``, ``compact``, ``soma_crop``, ``npix_norm``, ``overlap``, ...; plus
``snr``, ``skew``, ``std`` as suite2p computes them and ``roi_id``, the pipeline id),
``F.npy``, ``Fneu.npy``, ``spks.npy`` (float32 ``(roi, time)``), ``iscell.npy`` (every
exported ROI passed the pipeline's classification: ``[1, 1]``), and suite2p 1.1.0's
``db.npy``, ``settings.npy``, ``reg_outputs.npy`` (``meanImg``, ``meanImgE``, ``refImg``,
``yoff``/``xoff``/``corrXY``, ``yoff1``/``xoff1``, ``badframes``, ``yrange``/``xrange``)
and ``detect_outputs.npy`` (``Vcorr``: the local correlation image, ``max_proj``), with
``ops.npy`` their union (what the GUI loads first). ``reg_file`` points at the registered
movie (the pipeline's int16 binary is suite2p's ``data.bin`` layout). ROIs whose mask is
empty in this session (outside its field of view) are left out: ``stat[i]["roi_id"]``
names each row. Frames the pipeline dropped are NaN in the traces, as in the NetCDF.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io as _bytes_io
import json
import logging
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from analysis import __version__
from analysis.dims import COL, ROI, ROW, TIME
from analysis.io import atomic_path
from analysis.settings import StageSettings, require
from analysis.vocabulary import BCI_META_REQUIRED, NON_TARGET, NWB_BCI_CONTAINER, NWB_BCI_PARAMETERS

if TYPE_CHECKING:
    from pynwb import NWBFile

log = logging.getLogger(__name__)

SUITE2P_FILES = (
    "stat",
    "F",
    "Fneu",
    "spks",
    "iscell",
    "ops",
    "db",
    "settings",
    "reg_outputs",
    "detect_outputs",
)
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
_DURATION = re.compile(
    r"P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
    r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?"
)
_WEIGHT = re.compile(r"\d+(\.\d+)? ?(kg|g|mg)")
_COMPRESSION = {"compression": "gzip", "compression_opts": 4}


def _is_age(text: str) -> bool:
    """ISO 8601 duration, or a range ``lower/upper`` of them with either side blank."""
    if _DURATION.fullmatch(text):
        return True
    if text.count("/") != 1:
        return False
    lower, upper = text.split("/")
    return bool(lower or upper) and all(not s or _DURATION.fullmatch(s) for s in (lower, upper))


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
            _is_age(self.subject_age),
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


# --- metadata ----------------------------------------------------------------------------


def _as_datetime(value: Any, *, path: str | Path, field: str) -> tuple[dt.datetime, bool]:
    """A YAML/ISO date or datetime as an aware datetime; True when only a date was given."""
    if isinstance(value, str):
        try:
            value = (
                dt.date.fromisoformat(value)
                if len(value.strip()) == 10
                else dt.datetime.fromisoformat(value)
            )
        except ValueError:
            raise ValueError(
                f"{path}: field '{field}' is {value!r}, not an ISO 8601 date or date-time; "
                "write e.g. 2024-03-05 or 2024-03-05T10:30:00+01:00."
            ) from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(
                f"{path}: field '{field}' ({value.isoformat()}) has no UTC offset; add one, "
                "e.g. 2024-03-05T10:30:00+01:00 (or give only the date)."
            )
        return value, False
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC), True
    raise ValueError(
        f"{path}: field '{field}' must be an ISO 8601 date or date-time, got {value!r}."
    )


def compute_session_start_time(
    session: str, *, session_meta: Mapping[str, Any], path: str | Path
) -> tuple[dt.datetime, str]:
    """The session's start time and a sentence saying where it came from.

    Parameters
    ----------
    session : str
        Session name (``dayNN``, ``YYYY-MM-DD``, ...).
    session_meta : mapping
        The session's ``session.yaml``; its optional ``session_start_time`` (ISO 8601
        date-time with a UTC offset, or a date) wins.
    path : str or Path
        The ``session.yaml`` path, named in errors.

    Returns
    -------
    (datetime.datetime, str)
        Timezone-aware start time (the time of imaging volume 0), and its source.

    Examples
    --------
    >>> compute_session_start_time("day03", session_meta={}, path="session.yaml")[0].date()
    datetime.date(2000, 1, 3)
    """
    if session_meta.get("session_start_time") is not None:
        when, date_only = _as_datetime(
            session_meta["session_start_time"], path=path, field="session_start_time"
        )
        detail = " (a date only: midnight UTC)" if date_only else ""
        return when, f"session_start_time from {path}{detail}"
    found = re.search(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)", session)
    if found:
        try:
            day = dt.date(*map(int, found.groups()))
        except ValueError:
            day = None
        if day is not None:
            return (
                dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC),
                f"the date in the session name '{session}' (time of day unknown: midnight UTC)",
            )
    numbered = re.fullmatch(r"day(\d+)", session, flags=re.IGNORECASE)
    if numbered and int(numbered.group(1)) >= 1:
        when = PLACEHOLDER_DATE + dt.timedelta(days=int(numbered.group(1)) - 1)
        return when, (
            f"PLACEHOLDER: the real date is unknown; 2000-01-01 UTC plus {session}'s day "
            f"number minus one (set session_start_time in {path})"
        )
    return PLACEHOLDER_DATE, (
        f"PLACEHOLDER: the real date is unknown; 2000-01-01 UTC (set session_start_time in {path})"
    )


def compute_subject(
    subject: str,
    *,
    settings: ExportSettings,
    subject_meta: Mapping[str, Any] | None = None,
    path: str | Path | None = None,
) -> dict[str, Any]:
    """Keyword arguments of :class:`pynwb.file.Subject` for one subject.

    Parameters
    ----------
    subject : str
        Subject id.
    settings : ExportSettings
        Defaults for fields ``subject.yaml`` leaves out (``subject_*``).
    subject_meta : mapping, optional
        The subject's ``subject.yaml`` (fields in :data:`SUBJECT_FIELDS`).
    path : str or Path, optional
        The ``subject.yaml`` path, named in errors.

    Returns
    -------
    dict
        ``subject_id``, ``species``, ``sex``, ``age`` or ``date_of_birth``,
        ``description`` and, when known, ``strain``, ``genotype``, ``weight``.
    """
    meta = dict(subject_meta or {})
    for key in meta:
        if key not in SUBJECT_FIELDS:
            raise ValueError(
                f"{path}: unknown field '{key}'; valid fields are {', '.join(SUBJECT_FIELDS)}."
            )
    for key in ("species", "sex", "age", "strain", "genotype", "description", "weight"):
        if key in meta and not isinstance(meta[key], str):
            raise ValueError(f"{path}: field '{key}' must be text, got {meta[key]!r}.")
    if meta.get("sex", "U") not in SEXES:
        raise ValueError(
            f"{path}: field 'sex' is {meta['sex']!r}; use one of {', '.join(SEXES)} "
            "(M male, F female, U unknown, O other)."
        )
    if "age" in meta and not _is_age(meta["age"]):
        raise ValueError(
            f"{path}: field 'age' is {meta['age']!r}, not an ISO 8601 duration; write e.g. "
            "P90D (90 days), P12W, or a range P60D/P90D."
        )
    if "weight" in meta and not _WEIGHT.fullmatch(meta["weight"]):
        raise ValueError(
            f"{path}: field 'weight' is {meta['weight']!r}; write a number and a unit, e.g. '25 g'."
        )
    info: dict[str, Any] = {
        "subject_id": subject,
        "species": meta.get("species", settings.subject_species),
        "sex": meta.get("sex", settings.subject_sex),
        "strain": meta.get("strain", settings.subject_strain),
        "genotype": meta.get("genotype", settings.subject_genotype),
        "weight": meta.get("weight"),
    }
    if "date_of_birth" in meta:
        info["date_of_birth"] = _as_datetime(
            meta["date_of_birth"], path=path or "subject.yaml", field="date_of_birth"
        )[0]
    if "age" in meta or "date_of_birth" not in meta:
        info["age"] = meta.get("age", settings.subject_age)
    source = f"from {path}" if subject_meta is not None else "no subject.yaml"
    info["description"] = meta.get(
        "description",
        f"mouse {subject}; metadata {source}, missing fields from the export settings",
    )
    return {k: v for k, v in info.items() if v is not None}


def find_subject_yaml(session_dir: str | Path) -> list[str]:
    """``[path]`` of the optional ``subject.yaml`` beside a session folder, else ``[]``."""
    path = Path(session_dir).parent / "subject.yaml"
    return [str(path)] if path.is_file() else []


def nwb_identifier(subject: str, session: str, raw_sha256: Mapping[str, str]) -> str:
    """A UUID fixed by the subject, session and raw data (same raw data, same id)."""
    key = json.dumps(
        {"subject": subject, "session": session, "raw": sorted(raw_sha256.values())},
        sort_keys=True,
    )
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"bci-dendrites:{key}"))


# --- NWB ---------------------------------------------------------------------------------


def _roi_ids(plane: PlaneResults) -> np.ndarray:
    ids = plane.masks[ROI].to_numpy().astype(np.int64)
    if not np.array_equal(ids, plane.traces[ROI].to_numpy()):
        raise ValueError(
            f"plane {plane.plane}: mask roi ids {ids.tolist()} differ from the traces' roi ids "
            f"{plane.traces[ROI].to_numpy().tolist()}; rerun extract for this session."
        )
    if len(plane.detected) != len(ids):
        raise ValueError(
            f"plane {plane.plane}: {len(plane.detected)} 'detected' flags for {len(ids)} ROIs."
        )
    return ids


def _target_columns(ids: np.ndarray, targets: pd.DataFrame) -> dict[str, np.ndarray]:
    mapped = targets.dropna(subset=["roi"])
    rois = mapped["roi"].to_numpy(np.int64)
    if len(set(rois)) != len(rois):
        raise ValueError(
            f"targets table maps several targets onto one ROI ({sorted(rois)}); rerun map_targets."
        )
    unknown = sorted(set(rois) - set(ids))
    if unknown:
        raise ValueError(
            f"targets table names soma ROI(s) {unknown} that the soma plane does not have; "
            "rerun map_targets after track."
        )
    group = np.full(len(ids), NON_TARGET, dtype=object)
    target_id = np.full(len(ids), -1, np.int64)
    iou = np.full(len(ids), np.nan)
    index = {roi: i for i, roi in enumerate(ids)}
    for row in mapped.itertuples(index=False):
        i = index[int(row.roi)]
        group[i], target_id[i], iou[i] = str(row.group), int(row.target_id), float(row.iou)
    return {"target_group": group, "target_id": target_id, "target_iou": iou}


def _paired(pairs: pd.DataFrame) -> pd.DataFrame:
    if pairs.empty:
        return pd.DataFrame({"soma_roi": [], "dendrite_roi": [], "corr": [], "p_value": []})
    table = pairs[pairs["paired"].astype(bool)]
    if table["dendrite_roi"].duplicated().any():
        raise ValueError("pairs table pairs one dendrite with several somata; rerun the pair rule.")
    return table


@dataclasses.dataclass(frozen=True)
class _Ragged:
    """A ragged ROI column: one list per ROI, stored as NWB data + index."""

    lists: list[list[Any]]
    dtype: type


def _roi_columns(plane: PlaneResults, results: SessionResults) -> list[tuple[str, str, Any]]:
    """(name, description, values or :class:`_Ragged`) for the plane's PlaneSegmentation."""
    ids = _roi_ids(plane)
    columns: list[tuple[str, str, Any]] = [
        (
            "detected",
            "True if segmentation found this ROI in this session; False if its mask is the "
            "consensus of other sessions mapped into this one (the neuron was silent or "
            "missed here).",
            np.asarray(plane.detected, bool),
        )
    ]
    if "n_sessions_detected" in plane.masks.coords:
        columns.append(
            (
                "n_sessions_detected",
                "Number of sessions in which segmentation found this tracked ROI.",
                plane.masks["n_sessions_detected"].to_numpy().astype(np.int64),
            )
        )
    pairs = _paired(results.pairs)
    if plane.plane == results.soma_plane:
        targets = _target_columns(ids, results.targets)
        columns += [
            (
                "target_group",
                "BCI target group: 'P+' (must raise activity), 'P-' (must lower it) or "
                "'non-target'.",
                targets["target_group"],
            ),
            (
                "target_id",
                "Online target id from targets.json; -1: not a target.",
                targets["target_id"],
            ),
            (
                "target_iou",
                "IoU of the online target polygon with this ROI; NaN: not a target.",
                targets["target_iou"],
            ),
        ]
        unknown = sorted(set(pairs["soma_roi"].astype(np.int64)) - set(ids))
        if unknown:
            raise ValueError(
                f"pairs table names soma ROI(s) {unknown} that the soma plane does not have; "
                "rerun the pair rule."
            )
        by_soma = {roi: pairs[pairs["soma_roi"] == roi] for roi in ids}
        columns += [
            (
                "paired_dendrite_ids",
                f"Ids (in the Dendrite plane table) of the tuft dendrites paired with this "
                f"soma by bAP coupling (circular-shift shuffle test); plane "
                f"{results.dendrite_plane}.",
                _Ragged(
                    [by_soma[roi]["dendrite_roi"].astype(np.int64).tolist() for roi in ids],
                    np.int64,
                ),
            ),
            (
                "pairing_p_values",
                "Shuffle-test p-value of each pairing, in the order of paired_dendrite_ids.",
                _Ragged([by_soma[roi]["p_value"].astype(float).tolist() for roi in ids], float),
            ),
        ]
    if plane.plane == results.dendrite_plane:
        unknown = sorted(set(pairs["dendrite_roi"].astype(np.int64)) - set(ids))
        if unknown:
            raise ValueError(
                f"pairs table names dendrite ROI(s) {unknown} that the dendrite plane does not "
                "have; rerun the pair rule."
            )
        soma = np.full(len(ids), -1, np.int64)
        p_value = np.full(len(ids), np.nan)
        corr = np.full(len(ids), np.nan)
        index = {roi: i for i, roi in enumerate(ids)}
        for row in pairs.itertuples(index=False):
            i = index[int(row.dendrite_roi)]
            soma[i], p_value[i], corr[i] = int(row.soma_roi), float(row.p_value), float(row.corr)
        groups = {}
        if results.soma_plane is not None:
            soma_plane = next(p for p in results.planes if p.plane == results.soma_plane)
            soma_ids = _roi_ids(soma_plane)
            groups = dict(
                zip(
                    soma_ids,
                    _target_columns(soma_ids, results.targets)["target_group"],
                    strict=True,
                )
            )
        columns += [
            (
                "paired_soma_id",
                f"Id (in the Soma plane table, plane {results.soma_plane}) of the soma this "
                "dendrite is paired with by bAP coupling; -1: unpaired.",
                soma,
            ),
            ("pairing_p_value", "Shuffle-test p-value of the pairing; NaN: unpaired.", p_value),
            (
                "pairing_corr",
                "Correlation of soma and dendrite event activity; NaN: unpaired.",
                corr,
            ),
            (
                "target_group",
                "BCI target group of the paired soma ('P+', 'P-'); 'non-target' when "
                "unpaired or paired with a non-target soma.",
                np.array([groups.get(s, NON_TARGET) for s in soma], dtype=object),
            ),
        ]
    return columns


def _plane_segmentation(plane: PlaneResults, imaging_plane: Any, results: SessionResults) -> Any:
    from hdmf.backends.hdf5 import H5DataIO
    from hdmf.common import VectorData, VectorIndex
    from pynwb.ophys import PlaneSegmentation

    masks = plane.masks.transpose(ROI, ROW, COL).to_numpy().astype(np.float32)
    columns: list[Any] = [
        VectorData(
            name="image_mask",
            description=(
                "ROI weights (roi, row, col) on the pixel grid of this session's registered "
                "movie (row = image row, col = image column; 0 outside the ROI)."
            ),
            data=H5DataIO(masks, **_COMPRESSION),
        )
    ]
    for name, description, values in _roi_columns(plane, results):
        if isinstance(values, _Ragged):
            flat = np.array([v for row in values.lists for v in row], dtype=values.dtype)
            data = VectorData(name=name, description=description, data=flat)
            index = np.cumsum([len(row) for row in values.lists]).astype(np.uint32)
            columns += [data, VectorIndex(name=f"{name}_index", data=index, target=data)]
        else:
            columns.append(VectorData(name=name, description=description, data=values))
    description = (
        f"Tracked {plane.role} ROIs of plane {plane.plane}. Ids are the pipeline's ROI ids "
        "(stable across sessions). Masks are in this session's registered frame; "
        "results/track holds the same ROIs in the reference day's frame."
    )
    return PlaneSegmentation(
        name=plane.name,
        description=description,
        imaging_plane=imaging_plane,
        id=_roi_ids(plane).tolist(),
        columns=columns,
    )


_TRACES = (
    # container, variable, unit, description
    (
        "Fluorescence",
        "F",
        "a.u.",
        "F: weight-normalised mean of the ROI's pixels in the registered movie (int16 movie "
        "units, arbitrary).",
    ),
    (
        "Neuropil",
        "Fneu",
        "a.u.",
        "Fneu: mean of the ROI's neuropil annulus, excluding all ROI pixels (movie units).",
    ),
    (
        "DfOverF",
        "dff",
        "n.a.",
        "dF/F (dimensionless): (F - c * Fneu - F0) / F0 with F0 a running-percentile baseline "
        "(extract settings in the description of the ophys module).",
    ),
    (
        "Deconvolved",
        "spikes",
        "n.a.",
        "OASIS deconvolved activity (spike amplitudes in dF/F units) of dF/F.",
    ),
)


def _add_ophys(nwbfile: NWBFile, results: SessionResults, settings: ExportSettings) -> None:
    from hdmf.backends.hdf5 import H5DataIO
    from pynwb.base import Images
    from pynwb.image import GrayscaleImage
    from pynwb.ophys import DfOverF, Fluorescence, ImageSegmentation, OpticalChannel

    device = nwbfile.create_device(
        name="Microscope",
        description=f"two-photon microscope imaging {len(results.planes)} interleaved planes",
    )
    channel = OpticalChannel(
        name="GreenChannel",
        description=f"{settings.indicator} fluorescence",
        emission_lambda=settings.emission_lambda_nm,
    )
    extract_settings = {
        json.dumps(json.loads(p.traces.attrs.get("settings", "{}")), sort_keys=True)
        for p in results.planes
    }
    ophys = nwbfile.create_processing_module(
        name="ophys",
        description=(
            "bci-dendrites processing: suite2p registration, tracked soma and dendrite ROIs, "
            "traces, dF/F, OASIS deconvolution, events. extract settings: "
            + "; ".join(sorted(extract_settings))
        ),
    )
    with_rois = {p.plane for p in results.planes if p.masks.sizes[ROI]}
    for plane in results.planes:
        if not plane.masks.sizes[ROI]:
            log.warning("plane %d has no ROIs: no segmentation or traces written", plane.plane)
    segmentation = ImageSegmentation(name="ImageSegmentation")
    containers = {
        "Fluorescence": Fluorescence(name="Fluorescence"),
        "Neuropil": Fluorescence(name="Neuropil"),
        "DfOverF": DfOverF(name="DfOverF"),
        "Deconvolved": Fluorescence(name="Deconvolved"),
    }
    if with_rois:
        ophys.add(segmentation)
        for container in containers.values():
            ophys.add(container)
    for plane in results.planes:
        role_text = {"soma": "layer 5 somata", "dendrite": "apical tuft dendrites"}
        grid = {}
        if settings.pixel_size_um is not None:
            grid = {
                "grid_spacing": [settings.pixel_size_um, settings.pixel_size_um],
                "grid_spacing_unit": "micrometers",
            }
        imaging_plane = nwbfile.create_imaging_plane(
            name=f"ImagingPlane{plane.plane}",
            optical_channel=channel,
            description=f"plane {plane.plane}: {role_text.get(plane.role, plane.role)}",
            device=device,
            excitation_lambda=settings.excitation_lambda_nm,
            imaging_rate=float(results.fs_hz),
            indicator=settings.indicator,
            location=settings.brain_area,
            **grid,
        )
        reg = plane.registration
        ophys.add(
            Images(
                name=f"SummaryImages{plane.name}",
                description=f"summary images of plane {plane.plane}, (row, col), registered",
                images=[
                    GrayscaleImage(
                        name=name,
                        data=reg[var].transpose(ROW, COL).to_numpy().astype(np.float32),
                        description=text,
                    )
                    for name, var, text in (
                        ("mean", "mean_image", "mean of the registered frames"),
                        ("max", "max_image", "max of the registered frames"),
                        (
                            "mean_enhanced",
                            "mean_image_enhanced",
                            "high-pass filtered mean image (suite2p's meanImgE), scaled to [0, 1]",
                        ),
                        ("reference", "ref_image", "suite2p registration reference image"),
                    )
                ],
            )
        )
        if plane.plane not in with_rois:
            continue
        table = _plane_segmentation(plane, imaging_plane, results)
        segmentation.add_plane_segmentation(table)
        region = table.create_roi_table_region(
            description=f"all ROIs of {plane.name}", region=list(range(len(table.id)))
        )
        time = plane.traces[TIME].to_numpy()
        for container, var, unit, description in _TRACES:
            data = plane.traces[var].transpose(TIME, ROI).to_numpy().astype(np.float32)
            containers[container].create_roi_response_series(
                name=plane.name,
                data=H5DataIO(data, **_COMPRESSION),
                rois=region,
                unit=unit,
                rate=float(results.fs_hz),
                starting_time=float(time[0]) if len(time) else 0.0,
                description=description,
            )
        events = _events_table(plane, table, fs_hz=float(results.fs_hz))
        if events is not None:
            ophys.add(events)


def _events_table(plane: PlaneResults, table: Any, *, fs_hz: float) -> Any:
    from hdmf.common import DynamicTable, DynamicTableRegion, VectorData

    events = plane.events
    if events.empty:
        log.info("plane %d: no events, no events table", plane.plane)
        return None
    ids = _roi_ids(plane)
    index = {roi: i for i, roi in enumerate(ids)}
    unknown = sorted(set(events["roi"].astype(np.int64)) - set(index))
    if unknown:
        raise ValueError(
            f"plane {plane.plane}: events of ROI(s) {unknown} that the masks do not have; rerun "
            "extract."
        )
    columns = [
        DynamicTableRegion(
            name="roi",
            description=f"the event's ROI (row of {plane.name})",
            data=[index[int(r)] for r in events["roi"]],
            table=table,
        ),
        VectorData(
            name="frame",
            description="event onset volume index",
            data=events["frame"].to_numpy(np.int64),
        ),
        VectorData(
            name="peak_frame",
            description="volume index of the event's dF/F peak",
            data=events["peak_frame"].to_numpy(np.int64),
        ),
        VectorData(
            name="onset_time",
            description="event onset, seconds from session start",
            data=events["time_s"].to_numpy(float),
        ),
        VectorData(
            name="peak_time",
            description="dF/F peak, seconds from session start",
            data=events["peak_frame"].to_numpy(float) / fs_hz,
        ),
        VectorData(
            name="amplitude",
            description="peak dF/F minus the preceding minimum (dF/F units)",
            data=events["amplitude"].to_numpy(float),
        ),
    ]
    for name, text in (("peak_dff", "dF/F at the peak"), ("noise_sd", "robust SD of dF/F")):
        if name in events:
            columns.append(
                VectorData(name=name, description=text, data=events[name].to_numpy(float))
            )
    return DynamicTable(
        name=f"Events{plane.name}",
        description=f"calcium events detected on the dF/F of {plane.name}",
        id=list(range(len(events))),
        columns=columns,
    )


def _frame_times(frames: np.ndarray, fs_hz: float) -> np.ndarray:
    return np.asarray(frames, float) / fs_hz


def _add_behavior(nwbfile: NWBFile, results: SessionResults) -> None:
    from pynwb import TimeSeries
    from pynwb.behavior import BehavioralTimeSeries

    frames = results.bci_frames
    fs_hz = float(results.fs_hz)
    if not np.array_equal(frames["frame"].to_numpy(), np.arange(len(frames))):
        raise ValueError(
            "BCI log frames must run 0..n-1 without gaps; rerun ingest on this session."
        )
    meta = results.bci_meta
    task = results.task_error.set_index("frame").reindex(frames["frame"])
    series = [
        (
            "readout",
            frames["readout"],
            "n.a.",
            f"online BCI readout: mean dF/F of P+ minus mean dF/F of P- targets, smoothed over "
            f"3 volumes (dimensionless); hit at threshold {meta['threshold']:.6g}, failure "
            f"below failure_bound {meta['failure_bound']:.6g}.",
        ),
        (
            "grating_angle",
            frames["angle_deg"],
            "degrees",
            f"grating angle shown (target {meta['target_angle_deg']:g} deg); NaN when grey or "
            "black.",
        ),
        ("reward_ttl", frames["reward"], "n.a.", "1 on the volume of the reward TTL, else 0."),
        (
            "aversive_ttl",
            frames["aversive"],
            "n.a.",
            "1 on the volume where the white-noise (failure) sound started, else 0.",
        ),
        (
            "task_error",
            task["error"],
            "grating steps",
            "task error: distance of the grating from the target in grating steps; NaN outside "
            "a trial's active period.",
        ),
        (
            "task_error_derivative",
            task["error_derivative"],
            "grating steps per second",
            "smoothed time derivative of the task error.",
        ),
    ]
    if "licks" in frames:
        series.append(("licks", frames["licks"], "n.a.", "1 on volumes with a lick, else 0."))
    if "opto" in frames:
        series.append(("opto", frames["opto"], "n.a.", "optogenetic stimulation as logged."))
    bci = BehavioralTimeSeries(name=NWB_BCI_CONTAINER)
    for name, values, unit, description in series:
        bci.add_timeseries(
            TimeSeries(
                name=name,
                data=values.to_numpy(float),
                unit=unit,
                rate=fs_hz,
                starting_time=0.0,
                description=description,
            )
        )
    if {"shift_row", "shift_col"} <= set(frames.columns):
        bci.add_timeseries(
            TimeSeries(
                name="online_shift",
                data=frames[["shift_row", "shift_col"]].to_numpy(float),
                unit="pixels",
                rate=fs_hz,
                starting_time=0.0,
                description="online rigid motion correction applied by the rig, (row, col).",
            )
        )
    behavior = nwbfile.create_processing_module(
        name="behavior", description="BCI task: online readout, grating, outcomes, task error"
    )
    behavior.add(bci)
    behavior.add(_bci_parameters_table(meta))
    for name, column, text in (
        ("reward", "reward", "reward TTL"),
        ("aversive", "aversive", "white-noise (failure) sound onset"),
    ):
        hits = frames[frames[column].to_numpy(float) > 0]
        if hits.empty:
            log.info("no %s events in the BCI log", name)
            continue
        _add_events(nwbfile, name, hits, text=text, fs_hz=fs_hz)


_BCI_PARAMETER_TEXT = {
    "threshold": "readout level of a hit (dimensionless)",
    "failure_bound": "readout level below which a trial fails (dimensionless)",
    "target_angle_deg": "grating angle of the target, degrees",
    "max_trial_frames": "closed-loop volumes before a trial times out",
}


def _bci_parameters_table(meta: Mapping[str, Any]) -> Any:
    """bci_meta as a table, one row per parameter (ingest reads a re-ingested file's)."""
    from hdmf.common import DynamicTable, VectorData

    return DynamicTable(
        name=NWB_BCI_PARAMETERS,
        description="BCI task parameters of the session (bci_meta), one row per parameter",
        id=list(range(len(BCI_META_REQUIRED))),
        columns=[
            VectorData(
                name="parameter", description="parameter name", data=list(BCI_META_REQUIRED)
            ),
            VectorData(
                name="value",
                description="parameter value",
                data=[float(meta[key]) for key in BCI_META_REQUIRED],
            ),
            VectorData(
                name="meaning",
                description="what the parameter sets, with its unit",
                data=[_BCI_PARAMETER_TEXT[key] for key in BCI_META_REQUIRED],
            ),
        ],
    )


def _add_events(
    nwbfile: NWBFile, name: str, rows: pd.DataFrame, *, text: str, fs_hz: float
) -> None:
    from hdmf.common import VectorData
    from pynwb.event import EventsTable, TimestampVectorData

    nwbfile.add_events_table(
        EventsTable(
            name=name,
            description=f"{text}: one row per event, at the time of its imaging volume",
            source_description="BCI log (bci_frames.tsv / CLOOSE StimData)",
            id=list(range(len(rows))),
            columns=[
                TimestampVectorData(
                    name="timestamp",
                    description="event time, seconds from session start",
                    data=_frame_times(rows["frame"], fs_hz),
                    resolution=1.0 / fs_hz,
                ),
                VectorData(
                    name="frame", description="volume index", data=rows["frame"].to_numpy(np.int64)
                ),
                VectorData(
                    name="trial",
                    description="trial index (-1: outside trials)",
                    data=rows["trial"].to_numpy(np.int64),
                ),
            ],
        )
    )


def _add_trials(nwbfile: NWBFile, results: SessionResults) -> None:
    trials = results.trials
    fs_hz = float(results.fs_hz)
    if trials.empty:
        log.warning("session %s has no complete trials: no trials table", results.session)
        return
    columns = {
        "outcome": "'hit', 'failure' or 'timeout'",
        "reward_time": "reward TTL, seconds from session start; NaN: none",
        "aversive_time": "white-noise onset, seconds from session start; NaN: none",
        "time_to_outcome": "seconds from the start of the active period to the outcome",
        "active_start_time": "first volume with a grating under closed-loop control, s",
        "active_stop_time": "end of the last closed-loop volume, s",
        "n_active_frames": "number of closed-loop volumes",
        "start_frame": "first volume of the trial (grey period included)",
        "end_frame": "last volume of the trial (inclusive)",
    }
    for name, description in columns.items():
        nwbfile.add_trial_column(name=name, description=description)
    for row in trials.itertuples(index=False):
        nwbfile.add_trial(
            id=int(row.trial),
            start_time=row.start_frame / fs_hz,
            stop_time=(row.end_frame + 1) / fs_hz,
            outcome=str(row.outcome),
            reward_time=row.reward_frame / fs_hz,
            aversive_time=row.aversive_frame / fs_hz,
            time_to_outcome=float(row.time_to_outcome_s),
            active_start_time=row.active_start_frame / fs_hz,
            active_stop_time=(row.active_end_frame + 1) / fs_hz,
            n_active_frames=int(row.n_active_frames),
            start_frame=int(row.start_frame),
            end_frame=int(row.end_frame),
        )


def _add_epochs(nwbfile: NWBFile, results: SessionResults) -> None:
    from pynwb.epoch import TimeIntervals

    table = results.task_error.sort_values("frame")
    if table.empty:
        return
    epoch = table["epoch"].fillna("none").to_numpy(str)
    trial = table["trial"].to_numpy(np.int64)
    frame = table["frame"].to_numpy(np.int64)
    # a run ends where the epoch, the trial or frame contiguity changes
    breaks = np.flatnonzero(
        (epoch[1:] != epoch[:-1]) | (trial[1:] != trial[:-1]) | (np.diff(frame) != 1)
    )
    starts = np.r_[0, breaks + 1]
    stops = np.r_[breaks, len(frame) - 1]
    runs = [(a, b) for a, b in zip(starts, stops, strict=True) if epoch[a] != "none"]
    if not runs:
        log.info("session %s: no error-reduction or -increase epochs", results.session)
        return
    intervals = TimeIntervals(
        name="task_error_epochs",
        description=(
            "runs of volumes where the task error falls ('reduction') or rises ('increase'), "
            "from the bci stage's smoothed error derivative"
        ),
    )
    intervals.add_column(name="epoch", description="'reduction' or 'increase'")
    intervals.add_column(name="trial", description="trial index")
    for a, b in runs:
        intervals.add_interval(
            start_time=frame[a] / results.fs_hz,
            stop_time=(frame[b] + 1) / results.fs_hz,
            epoch=str(epoch[a]),
            trial=int(trial[a]),
        )
    nwbfile.add_time_intervals(intervals)


def build_nwb(
    results: SessionResults,
    *,
    start_time: dt.datetime,
    start_time_source: str,
    subject_info: Mapping[str, Any],
    settings: ExportSettings,
) -> NWBFile:
    """One session's results as an in-memory NWB file (layout in the module docstring).

    Parameters
    ----------
    results : SessionResults
    start_time : datetime.datetime
        Timezone-aware time of imaging volume 0 (:func:`compute_session_start_time`).
    start_time_source : str
        Where ``start_time`` came from; written to the file's ``notes``.
    subject_info : mapping
        :class:`pynwb.file.Subject` arguments (:func:`compute_subject`).
    settings : ExportSettings

    Returns
    -------
    pynwb.NWBFile
    """
    from pynwb import NWBFile
    from pynwb.file import Subject

    if start_time.tzinfo is None:
        raise ValueError("build_nwb: start_time must carry a timezone")
    meta = results.bci_meta
    roles = ", ".join(f"plane {p.plane}: {p.role}" for p in results.planes)
    nwbfile = NWBFile(
        session_description=(
            f"BCI session {results.session} of subject {results.subject}: two-photon imaging "
            f"of layer 5 somata and their apical tuft dendrites ({roles}) at "
            f"{results.fs_hz:g} volumes/s while the mouse moves a grating to the target by "
            "raising P+ and lowering P- target neurons' activity."
        ),
        identifier=nwb_identifier(results.subject, results.session, results.raw_sha256),
        session_start_time=start_time,
        timestamps_reference_time=start_time,
        session_id=results.session,
        experiment_description=(
            "Brain-computer interface task (CLOOSE): readout = mean dF/F(P+) - mean "
            "dF/F(P-); seven grating positions in 15 degree steps toward the target "
            f"({meta['target_angle_deg']:g} deg); hit at readout >= {meta['threshold']:.6g}, "
            f"failure below {meta['failure_bound']:.6g}, timeout after "
            f"{int(meta['max_trial_frames'])} active volumes. Analysis as in Francioni et al., "
            "Nature 2026, doi:10.1038/s41586-026-10190-7."
        ),
        keywords=list(KEYWORDS),
        notes=(
            f"session_start_time: {start_time_source}. All times are seconds from the start "
            "of imaging volume 0 (volume n at n / imaging_rate; planes of one volume share "
            "its time). Image masks and summary images are (row, col) on the session's "
            "registered frame."
        ),
        data_collection="raw files (sha256): "
        + "; ".join(f"{Path(k).name} {v}" for k, v in sorted(results.raw_sha256.items())),
        source_script=f"bci-dendrites {__version__}",
        source_script_file_name="analysis/export.py",
        lab=settings.lab,
        institution=settings.institution,
        experimenter=[settings.experimenter] if settings.experimenter else None,
        subject=Subject(**subject_info),
    )
    _add_ophys(nwbfile, results, settings)
    _add_behavior(nwbfile, results)
    _add_trials(nwbfile, results)
    _add_epochs(nwbfile, results)
    return nwbfile


def write_nwb(nwbfile: NWBFile, path: str | Path) -> None:
    """Write ``nwbfile`` as HDF5 to ``path`` atomically (built in memory, then renamed)."""
    import h5py
    from pynwb import NWBHDF5IO

    buffer = _bytes_io.BytesIO()
    with h5py.File(buffer, "w") as file, NWBHDF5IO(file=file, mode="w") as nwb_io:
        nwb_io.write(nwbfile)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def inspect_nwb(path: str | Path) -> pd.DataFrame:
    """nwbinspector's findings (and PyNWB validation) on a written NWB file.

    Returns
    -------
    pandas.DataFrame
        One row per finding: ``importance``, ``severity``, ``check``, ``object_type``,
        ``object_name``, ``location``, ``message``.
    """
    from nwbinspector import inspect_nwbfile

    rows = [
        {
            "importance": m.importance.name,
            "severity": m.severity.name,
            "check": m.check_function_name,
            "object_type": m.object_type,
            "object_name": m.object_name,
            "location": m.location,
            "message": m.message,
        }
        for m in inspect_nwbfile(nwbfile_path=str(path))
    ]
    columns = [
        "importance",
        "severity",
        "check",
        "object_type",
        "object_name",
        "location",
        "message",
    ]
    return pd.DataFrame(rows, columns=columns)


def check_inspection(report: pd.DataFrame, *, path: str | Path) -> None:
    """Raise ValueError if ``report`` has a finding worse than a best-practice suggestion."""
    bad = report[~report["importance"].isin(ALLOWED_IMPORTANCE)]
    if not bad.empty:
        lines = "; ".join(
            f"{r.importance} {r.check} at {r.location}: {r.message}" for r in bad.itertuples()
        )
        raise ValueError(f"{path}: nwbinspector found {len(bad)} problem(s): {lines}")


# --- suite2p ------------------------------------------------------------------------------


def compute_correlation_image(
    movie: Any,
    *,
    rows: slice = slice(None),
    cols: slice = slice(None),
    bad_frames: np.ndarray | None = None,
    batch_frames: int = 500,
) -> np.ndarray:
    """Local correlation image: each pixel's mean correlation with its 8 neighbours.

    Streams over the movie (``batch_frames`` frames at a time); this is the correlation
    map suite2p's GUI shows (``Vcorr``).

    Parameters
    ----------
    movie : array-like (time, row, col)
        Registered movie, e.g. a read-only memmap.
    rows, cols : slice
        Region to use (suite2p's ``yrange`` / ``xrange``, the valid registered area).
    bad_frames : numpy.ndarray of bool (time,), optional
        Frames to leave out.
    batch_frames : int

    Returns
    -------
    numpy.ndarray (row, col) float32
        Pearson correlations in [-1, 1] over the region; 0 where a pixel is constant.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> shared = rng.normal(size=(200, 1, 1))
    >>> movie = shared + 0.1 * rng.normal(size=(200, 4, 4))
    >>> bool(compute_correlation_image(movie).min() > 0.9)
    True
    """
    n_frames = movie.shape[0]
    keep = np.ones(n_frames, bool) if bad_frames is None else ~np.asarray(bad_frames, bool)
    offsets = ((0, 1), (1, 0), (1, 1), (1, -1))
    offset = None
    n = 0
    total = total_sq = None
    cross: list[np.ndarray] = []
    for start in range(0, n_frames, batch_frames):
        good = keep[start : start + batch_frames]
        x = np.asarray(movie[start : start + batch_frames], np.float64)[good][:, rows, cols]
        if not len(x):
            continue
        if offset is None:
            # subtract a per-pixel level first: sums of squares stay well conditioned
            offset = x.mean(axis=0)
            total, total_sq = np.zeros_like(offset), np.zeros_like(offset)
            cross = [np.zeros_like(_pair(offset[None], d)[0][0]) for d in offsets]
        x = x - offset
        n += len(x)
        total += x.sum(axis=0)
        total_sq += (x * x).sum(axis=0)
        for acc, d in zip(cross, offsets, strict=True):
            a, b = _pair(x, d)
            acc += (a * b).sum(axis=0)
    if offset is None:
        raise ValueError("compute_correlation_image: no good frames in the movie")
    mean = total / n
    var = np.maximum(total_sq / n - mean**2, 0.0)
    corr_sum = np.zeros_like(mean)
    count = np.zeros_like(mean)
    for acc, d in zip(cross, offsets, strict=True):
        (mean_a, mean_b), (var_a, var_b) = _pair(mean[None], d), _pair(var[None], d)
        denom = np.sqrt(var_a[0] * var_b[0])
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.where(denom > 0, (acc / n - mean_a[0] * mean_b[0]) / denom, 0.0)
        for target in _pair(corr_sum[None], d):
            target[0] += corr
        for target in _pair(count[None], d):
            target[0] += 1
    return (corr_sum / np.maximum(count, 1)).astype(np.float32)


def _pair(x: np.ndarray, offset: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Views of ``x`` (time, row, col) at pixel p and at its neighbour p + offset."""
    dr, dc = offset
    n_rows, n_cols = x.shape[1:]
    rows_a, rows_b = slice(0, n_rows - dr), slice(dr, n_rows)
    if dc >= 0:
        cols_a, cols_b = slice(0, n_cols - dc), slice(dc, n_cols)
    else:
        cols_a, cols_b = slice(-dc, n_cols), slice(0, n_cols + dc)
    return x[:, rows_a, cols_a], x[:, rows_b, cols_b]


def compute_suite2p_plane(
    masks: xr.DataArray,
    traces: xr.Dataset,
    registration: xr.Dataset,
    *,
    correlation_image: np.ndarray,
    fs_hz: float,
    n_planes: int,
    plane: int,
    tau_s: float,
    neuropil_coefficient: float,
    diameter_px: float,
    reg_file: str,
    save_path: str,
    data_path: str,
) -> dict[str, Any]:
    """The contents of a suite2p 1.1.0 plane folder for one session and plane.

    Parameters
    ----------
    masks : xarray.DataArray (roi, row, col)
        Tracked masks in this session's registered frame.
    traces : xarray.Dataset
        ``extract`` output with ``F``, ``Fneu``, ``spikes`` ``(roi, time)``.
    registration : xarray.Dataset
        ``register`` output.
    correlation_image : numpy.ndarray (row, col)
        :func:`compute_correlation_image` over ``valid_row_range`` x ``valid_col_range``.
    fs_hz : float
        Volume rate (suite2p's per-plane ``fs``), Hz.
    n_planes, plane : int
        Number of planes in the session, and this plane's index.
    tau_s : float
        Indicator decay time (suite2p's ``tau``), s.
    neuropil_coefficient : float
        The ``c`` of ``F - c * Fneu``.
    diameter_px : float
        Expected soma diameter (suite2p's ``diameter``), px.
    reg_file, save_path, data_path : str
        Registered movie, this plane folder, and the raw session folder (recorded in
        ``db``).

    Returns
    -------
    dict
        ``{name: value}`` for each of :data:`SUITE2P_FILES`: ``stat`` an object array of
        dicts, ``F``/``Fneu``/``spks`` float32 ``(roi, time)``, ``iscell`` ``(roi, 2)``,
        and the dicts ``ops``, ``db``, ``settings``, ``reg_outputs``, ``detect_outputs``.
    """
    from scipy.stats import skew
    from suite2p.detection.stats import assign_overlaps, roi_stats
    from suite2p.parameters import default_db, default_settings

    ids = masks[ROI].to_numpy()
    if not np.array_equal(ids, traces[ROI].to_numpy()):
        raise ValueError(
            f"compute_suite2p_plane: mask roi ids {ids.tolist()} differ from the traces' "
            f"{traces[ROI].to_numpy().tolist()}; rerun extract."
        )
    weights = masks.transpose(ROI, ROW, COL).to_numpy()
    n_rows, n_cols = weights.shape[1:]
    keep = weights.reshape(len(ids), -1).max(axis=1) > 0
    if not keep.all():
        log.info("ROIs %s have empty masks in this session: left out", ids[~keep].tolist())
    stats = []
    for roi_id, weight in zip(ids[keep], weights[keep], strict=True):
        ypix, xpix = np.nonzero(weight > 0)
        stats.append(
            {
                "ypix": ypix.astype(np.int32),
                "xpix": xpix.astype(np.int32),
                "lam": weight[ypix, xpix].astype(np.float32),
                "roi_id": int(roi_id),
            }
        )
    stat = np.array(stats, dtype=object)
    if len(stat):
        # npix_norm bounds open and no overlap limit: suite2p must not drop any ROI
        stat = roi_stats(
            stat,
            n_rows,
            n_cols,
            diameter=[diameter_px, diameter_px],
            max_overlap=None,
            npix_norm_min=-np.inf,
            npix_norm_max=np.inf,
        )
        stat = assign_overlaps(stat, n_rows, n_cols)
    if len(stat) != keep.sum():
        raise RuntimeError("suite2p roi_stats dropped ROIs; the exported stat would misalign")
    F = traces["F"].transpose(ROI, TIME).to_numpy()[keep].astype(np.float32)
    Fneu = traces["Fneu"].transpose(ROI, TIME).to_numpy()[keep].astype(np.float32)
    spks = traces["spikes"].transpose(ROI, TIME).to_numpy()[keep].astype(np.float32)
    dF = F.astype(np.float64) - neuropil_coefficient * Fneu
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = 1 - 0.5 * np.nanvar(np.diff(dF, axis=1), axis=1) / np.nanvar(dF, axis=1)
    for k, entry in enumerate(stat):
        entry["snr"] = float(snr[k])
        entry["skew"] = float(skew(dF[k], nan_policy="omit"))
        entry["std"] = float(np.nanstd(dF[k]))

    row_range = [int(v) for v in np.ravel(registration.attrs["valid_row_range"])]
    col_range = [int(v) for v in np.ravel(registration.attrs["valid_col_range"])]
    crop = (slice(*row_range), slice(*col_range))
    expected = (row_range[1] - row_range[0], col_range[1] - col_range[0])
    if correlation_image.shape != expected:
        raise ValueError(
            f"compute_suite2p_plane: correlation image {correlation_image.shape} does not "
            f"cover the valid range {expected} (rows {row_range}, cols {col_range})"
        )
    settings = default_settings()
    settings.update(
        fs=float(fs_hz),
        tau=float(tau_s),
        diameter=[diameter_px, diameter_px],
        torch_device="cpu",
    )
    settings["extraction"]["neuropil_coefficient"] = float(neuropil_coefficient)
    db = default_db()
    db.update(
        data_path=[data_path],
        save_path0=str(Path(save_path).parent.parent),
        save_folder=Path(save_path).parent.name,
        save_path=save_path,
        reg_file=reg_file,
        nplanes=int(n_planes),
        iplane=int(plane),
        nchannels=1,
        Ly=int(n_rows),
        Lx=int(n_cols),
        nframes=int(traces.sizes[TIME]),
        exported_by=f"bci-dendrites {__version__} (analysis.export)",
    )
    image = {
        name: registration[name].transpose(ROW, COL).to_numpy().astype(np.float32)
        for name in ("ref_image", "mean_image", "mean_image_enhanced", "max_image")
    }
    reg_outputs = {
        "refImg": image["ref_image"],
        "meanImg": image["mean_image"],
        "meanImgE": image["mean_image_enhanced"],
        "yoff": registration["rigid_shift_row"].to_numpy(),
        "xoff": registration["rigid_shift_col"].to_numpy(),
        "corrXY": registration["phase_corr"].to_numpy(),
        "yoff1": registration["nonrigid_shift_row"].to_numpy(),
        "xoff1": registration["nonrigid_shift_col"].to_numpy(),
        "badframes": registration["bad_frame"].to_numpy().astype(bool),
        "yrange": row_range,
        "xrange": col_range,
        "bidiphase": 0,
    }
    detect_outputs = {
        "Vcorr": np.asarray(correlation_image, np.float32),
        "max_proj": image["max_image"][crop],
        "diameter": np.array([diameter_px, diameter_px]),
    }
    return {
        "stat": stat,
        "F": F,
        "Fneu": Fneu,
        "spks": spks,
        "iscell": np.ones((len(stat), 2), np.float32),
        "ops": {**db, **settings, **reg_outputs, **detect_outputs},
        "db": db,
        "settings": settings,
        "reg_outputs": reg_outputs,
        "detect_outputs": detect_outputs,
    }


def write_suite2p_plane(contents: Mapping[str, Any], folder: str | Path) -> list[Path]:
    """Save :func:`compute_suite2p_plane` output as ``<folder>/<name>.npy`` files.

    Dicts are saved as suite2p saves them (a 0-d object array: ``np.load(...,
    allow_pickle=True).item()``). Returns the written paths.
    """
    missing = [name for name in SUITE2P_FILES if name not in contents]
    if missing:
        raise ValueError(f"write_suite2p_plane: missing {missing}")
    paths = []
    for name in SUITE2P_FILES:
        path = Path(folder) / f"{name}.npy"
        with atomic_path(path) as tmp, open(tmp, "wb") as file:
            np.save(file, contents[name], allow_pickle=True)
        paths.append(path)
    return paths
