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

Modules: ``settings`` (ExportSettings, PlaneResults, SessionResults), ``metadata`` (start
time, subject, identifier), ``nwb_ophys`` (planes, ROIs, traces, events), ``nwb_behavior``
(BCI log, parameters, trials, epochs), ``nwb`` (build, write, inspect), ``suite2p``.
"""

from __future__ import annotations

from analysis.export.metadata import (
    compute_session_start_time,
    compute_subject,
    find_subject_yaml,
    nwb_identifier,
)
from analysis.export.nwb import build_nwb, check_inspection, inspect_nwb, write_nwb
from analysis.export.settings import (
    ALLOWED_IMPORTANCE,
    KEYWORDS,
    PLACEHOLDER_DATE,
    SEXES,
    SUBJECT_FIELDS,
    ExportSettings,
    PlaneResults,
    SessionResults,
)
from analysis.export.suite2p import (
    SUITE2P_FILES,
    compute_correlation_image,
    compute_suite2p_plane,
    write_suite2p_plane,
)

__all__ = [
    "ALLOWED_IMPORTANCE",
    "ExportSettings",
    "KEYWORDS",
    "PLACEHOLDER_DATE",
    "PlaneResults",
    "SEXES",
    "SUBJECT_FIELDS",
    "SUITE2P_FILES",
    "SessionResults",
    "build_nwb",
    "check_inspection",
    "compute_correlation_image",
    "compute_session_start_time",
    "compute_subject",
    "compute_suite2p_plane",
    "find_subject_yaml",
    "inspect_nwb",
    "nwb_identifier",
    "write_nwb",
    "write_suite2p_plane",
]
