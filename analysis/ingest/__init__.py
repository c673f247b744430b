"""Ingest: check a raw session and split it into planes, in the plain session format's terms.

Input contract (DESIGN.md section 3, read-only): a session folder with ``session.yaml``
(``plane_roles``, optional ``bci_plane``; ``fs_hz`` and ``n_planes`` unless the imaging
metadata records them), imaging files, a BCI log, ``bci_meta.yaml`` and ``targets.json``.
Imaging is ``plane<k>.tif`` per plane or interleaved TIFF stacks (frame k belongs to plane
k mod n_planes), or what a rig wrote: ScanImage TIFF, Scanbox .sbx, HDF5 or NWB, read by
:mod:`analysis.readers` into the same per-plane frames. The BCI log is
``bci_frames.tsv`` (one row per imaging volume) or, when that is absent, the rig's CLOOSE
log ``BCI_Trials/<n>.mat`` (struct ``StimData``), converted by :func:`convert_stimdata` to
the same table and metadata (``bci_meta.yaml`` then only needs ``max_trial_frames``), or,
when the imaging is an NWB file and neither is there, that file's trials table and BCI
time series (:func:`convert_nwb_bci_log`).

Output contract: per plane a ``(time, row, col)`` int16 binary movie; a session record
with metadata, frame counts, dropped/saturated frames and raw sha256 checksums; the
validated BCI table, BCI metadata and targets.

Every problem raises :class:`IngestError` naming the file, the field and the fix.

Modules: ``session`` (session.yaml and the imaging metadata), ``bci_log`` (the plain log,
which log a session has), ``cloose_log`` (CLOOSE StimData .mat), ``nwb_log`` (a log in an
NWB file), ``targets`` (targets.json), ``planes`` (:func:`inspect_session`,
:func:`fill_plane`). The stage's error, settings and frame checks live below the readers
(:mod:`analysis.readers.base`) and are re-exported here.
"""

from __future__ import annotations

from analysis.ingest.bci_log import check_bci_frames, check_bci_meta, find_bci_log
from analysis.ingest.cloose_log import (
    CLOOSE_ANGLE_GREY,
    CLOOSE_ANGLE_ITI,
    CLOOSE_GREY_FRAMES,
    CLOOSE_SMOOTH_FRAMES,
    STIMDATA_FIELDS,
    STIMDATA_OPTIONAL,
    convert_stimdata,
)
from analysis.ingest.nwb_log import convert_nwb_bci_log
from analysis.ingest.planes import convert_frames, fill_plane, inspect_session
from analysis.ingest.session import (
    FS_RTOL,
    SessionMeta,
    check_session_meta,
    merge_imaging_meta,
    read_session_meta,
)
from analysis.ingest.targets import TARGET_EDGE_TOLERANCE_PX, check_targets
from analysis.readers.base import (
    IngestError,
    IngestSettings,
    check_interleaved_count,
    check_plane_frames,
)
from analysis.vocabulary import (
    BCI_META_REQUIRED,
    BCI_OPTIONAL_COLUMNS,
    BCI_REQUIRED_COLUMNS,
    PLANE_ROLES,
)

__all__ = [
    "BCI_META_REQUIRED",
    "BCI_OPTIONAL_COLUMNS",
    "BCI_REQUIRED_COLUMNS",
    "PLANE_ROLES",
    "IngestError",
    "IngestSettings",
    "check_interleaved_count",
    "check_plane_frames",
    "CLOOSE_ANGLE_GREY",
    "CLOOSE_ANGLE_ITI",
    "CLOOSE_GREY_FRAMES",
    "CLOOSE_SMOOTH_FRAMES",
    "FS_RTOL",
    "STIMDATA_FIELDS",
    "STIMDATA_OPTIONAL",
    "SessionMeta",
    "TARGET_EDGE_TOLERANCE_PX",
    "check_bci_frames",
    "check_bci_meta",
    "check_session_meta",
    "check_targets",
    "convert_frames",
    "convert_nwb_bci_log",
    "convert_stimdata",
    "fill_plane",
    "find_bci_log",
    "inspect_session",
    "merge_imaging_meta",
    "read_session_meta",
]
