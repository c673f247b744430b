"""One session's NWB file: build, write, inspect (nwbinspector)."""

from __future__ import annotations

import datetime as dt
import io as _bytes_io
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from analysis import __version__
from analysis.export.metadata import nwb_identifier
from analysis.export.nwb_behavior import add_behavior, add_epochs, add_trials
from analysis.export.nwb_ophys import add_ophys
from analysis.export.settings import ALLOWED_IMPORTANCE, KEYWORDS, ExportSettings, SessionResults
from analysis.io import atomic_path

if TYPE_CHECKING:
    from pynwb import NWBFile


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
    add_ophys(nwbfile, results, settings)
    add_behavior(nwbfile, results)
    add_trials(nwbfile, results)
    add_epochs(nwbfile, results)
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
