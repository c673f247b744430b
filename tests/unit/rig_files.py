"""Byte-exact rig files for reader tests: ScanImage BigTIFF and Scanbox .sbx + info .mat.

Neither format has a writer outside its rig's own MATLAB code, so these write the bytes
the way the rigs do (HDF5 and NWB fixtures are written with h5py and pynwb in the tests).
"""

from __future__ import annotations

import struct

import numpy as np
import scipy.io

SCANIMAGE_MAGIC = 117637889  # 0x07030301, at byte 16 of a ScanImage 2016+ BigTIFF
_ASCII, _SHORT, _LONG, _LONG8 = 2, 3, 4, 16
_TYPE_SIZE = {_ASCII: 1, _SHORT: 2, _LONG: 4, _LONG8: 8}


def scanimage_frame_data(
    *,
    volume_rate_hz: float,
    n_slices: int,
    channels=(1,),
    flyback: int = 0,
    extra: dict | None = None,
) -> dict:
    """ScanImage 2019-style non-varying frame data of a fast-z (or planar) time series."""
    frame_rate = volume_rate_hz * (n_slices + flyback)
    data = {
        "SI.VERSION_MAJOR": "'2019b'",
        "SI.hChannels.channelSave": "[" + ";".join(str(c) for c in channels) + "]",
        "SI.hChannels.channelName": "{'Channel 1' 'Channel 2' 'Channel 3' 'Channel 4'}",
        "SI.hFastZ.enable": "true" if n_slices > 1 else "false",
        "SI.hFastZ.discardFlybackFrames": "true" if flyback else "false",
        "SI.hFastZ.numDiscardFlybackFrames": str(flyback),
        "SI.hRoiManager.mroiEnable": "false",
        "SI.hRoiManager.scanFrameRate": repr(frame_rate),
        "SI.hRoiManager.scanVolumeRate": repr(volume_rate_hz),
        "SI.hScan2D.logAverageFactor": "1",
        "SI.hStackManager.framesPerSlice": "1" if n_slices > 1 else "Inf",
        "SI.hStackManager.numSlices": str(n_slices),
    }
    data.update(extra or {})
    return data


def _ifd(entries: list[tuple[int, int, object]], at: int) -> tuple[bytes, bytes]:
    """A BigTIFF IFD at byte ``at``: (IFD bytes, values stored after it)."""
    entries = sorted(entries)
    size = 8 + 20 * len(entries) + 8
    head = struct.pack("<Q", len(entries))
    tail = b""
    for tag, kind, value in entries:
        if kind == _ASCII:
            raw = value.encode() + b"\0"
            count = len(raw)
        else:
            values = value if isinstance(value, (list, tuple)) else [value]
            raw = struct.pack(
                "<" + {_SHORT: "H", _LONG: "I", _LONG8: "Q"}[kind] * len(values), *values
            )
            count = len(values)
        if len(raw) <= 8:
            field = raw.ljust(8, b"\0")
        else:
            field = struct.pack("<Q", at + size + len(tail))
            tail += raw + b"\0" * (len(raw) % 2)
        head += struct.pack("<HHQ", tag, kind, count) + field
    return head, tail


def write_scanimage_tiff(path, frames: np.ndarray, frame_data: dict, *, first_frame: int = 1):
    """Write int16 ``frames`` (pages, row, col) as ScanImage 2016+ writes a BigTIFF.

    Layout: BigTIFF header; ScanImage header (magic, version 3, lengths) with the
    non-varying frame data ('SI.x = v' lines) and the ROI group JSON; then per frame its
    IFD, tag values (per-frame ImageDescription, Software = frame data, Artist = ROIs)
    and pixels. Returns the byte offsets where each frame's IFD starts.
    """
    frames = np.asarray(frames, dtype="<i2")
    text = "\n".join(f"{key} = {value}" for key, value in frame_data.items()) + "\n"
    rois = '{"RoiGroups": {"imagingRoiGroup": {"ver": 1, "name": "Default"}}}'
    static = text.encode() + b"\0"
    roi_bytes = rois.encode() + b"\0"
    out = bytearray(b"II" + struct.pack("<HHH", 43, 8, 0) + b"\0" * 8)
    out += struct.pack("<IIII", SCANIMAGE_MAGIC, 3, len(static), len(roi_bytes))
    out += static + roi_bytes
    out += b"\0" * (-len(out) % 8)
    struct.pack_into("<Q", out, 8, len(out))
    rows, cols = frames.shape[1:]
    offsets = []
    for index, frame in enumerate(frames):
        at = len(out)
        offsets.append(at)
        description = (
            f"frameNumbers = {first_frame + index}\n"
            f"frameNumberAcquisition = {first_frame + index}\n"
            f"frameTimestamps_sec = {index * 0.01:.6f}\n"
        )
        pixels = frame.tobytes()
        entries = [
            (256, _LONG, cols),
            (257, _LONG, rows),
            (258, _SHORT, 16),
            (259, _SHORT, 1),
            (262, _SHORT, 1),
            (270, _ASCII, description),
            (273, _LONG8, 0),  # patched below, once the tag values' length is known
            (277, _SHORT, 1),
            (278, _LONG, rows),
            (279, _LONG8, len(pixels)),
            (305, _ASCII, text),
            (315, _ASCII, rois),
            (339, _SHORT, 2),  # signed integer
        ]
        head, tail = _ifd(entries, at)
        data_at = at + len(head) + 8 + len(tail)
        head, tail = _ifd([(t, k, data_at if t == 273 else v) for t, k, v in entries], at)
        last = index == len(frames) - 1
        out += head + struct.pack("<Q", 0 if last else data_at + len(pixels)) + tail + pixels
    path.write_bytes(bytes(out))
    return offsets


def write_sbx(
    stem,
    frames: np.ndarray,
    *,
    resfreq: float = 7930.0,
    lines: int = 512,
    bidirectional: bool = True,
    otwave=None,
):
    """Write ``frames`` (volume, plane, channel, row, col) uint16 as Scanbox does.

    ``<stem>.sbx``: every frame's samples as 65535 - value, column-fastest then channel
    interleaved per pixel (sbxreader maps it as (channel, col, row, plane, frame) in
    Fortran order); ``<stem>.mat``: the ``info`` struct Scanbox saves beside it, with the
    fields sbxreader reads (scanbox 3: ``info.chan.nchan``; planes from ``info.otwave``
    when ``info.volscan``).
    """
    frames = np.asarray(frames, dtype=np.uint16)
    n_volumes, n_planes, n_channels, rows, cols = frames.shape
    stored = (np.uint16(65535) - frames).transpose(0, 1, 3, 4, 2)  # frame, plane, row, col, ch
    stem.with_suffix(".sbx").write_bytes(stored.astype("<u2").tobytes())
    info = {
        "sz": np.array([rows, cols], dtype=np.uint16),
        "resfreq": float(resfreq),
        "scanmode": 0.0 if bidirectional else 1.0,
        "volscan": float(n_planes > 1),
        "otwave": np.asarray(otwave if otwave is not None else np.arange(n_planes) * 20.0)
        if n_planes > 1
        else np.zeros((0, 0)),
        "chan": {"nchan": np.uint8(n_channels)},
        "config": {
            "lines": float(lines),
            "magnification": np.uint8(1),
            "magnification_list": np.array([1.0, 1.2, 1.4, 1.7, 2.0]),
            "frames": float(n_volumes * n_planes),
            "knobby": {"pos": {"x": 0.0, "y": 0.0, "z": 0.0, "a": 0.0}},
        },
        "scanbox_version": 3.0,
        "recordsPerBuffer": float(lines // 2 if bidirectional else lines),
        "dxcal": 1.0,
        "dycal": 1.0,
    }
    scipy.io.savemat(stem.with_suffix(".mat"), {"info": info}, do_compression=True)


def write_hdf5(path, frames: np.ndarray, *, dataset="/mov", attrs=None, extra=None):
    """Write ``frames`` (time, row, col) as a chunked HDF5 dataset with ``attrs``.

    ``extra`` maps further dataset paths to arrays (e.g. a 1-D timestamps vector).
    """
    import h5py

    with h5py.File(path, "w") as handle:
        data = handle.create_dataset(
            dataset, data=frames, chunks=(min(4, len(frames)), *frames.shape[1:])
        )
        data.attrs.update(attrs or {})
        for name, value in (extra or {}).items():
            handle.create_dataset(name, data=value)


def write_nwb(path, series: dict, *, rate_hz, timestamps=None, trials=True):
    """Write TwoPhotonSeries ``{name: frames (time, row, col) or (time, row, col, z)}``.

    Frames are stored as NWB orders them, (frame, x, y[, z]) with x the column. Each
    series gets its own imaging plane; ``rate_hz`` is one rate or {name: rate};
    ``timestamps`` replaces it when given; ``trials`` adds a two-trial trials table.
    """
    from datetime import UTC, datetime

    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.ophys import OpticalChannel, TwoPhotonSeries

    nwb = NWBFile(
        session_description="BCI session",
        identifier=str(path),
        session_start_time=datetime(2024, 1, 1, tzinfo=UTC),
    )
    device = nwb.create_device(name="Microscope")
    for name, frames in series.items():
        rate = rate_hz[name] if isinstance(rate_hz, dict) else rate_hz
        plane = nwb.create_imaging_plane(
            name=f"{name}_plane",
            optical_channel=OpticalChannel(
                name="green", description="GCaMP", emission_lambda=520.0
            ),
            imaging_rate=rate or 10.0,
            description="layer 2/3 or apical tufts",
            device=device,
            excitation_lambda=920.0,
            indicator="GCaMP8m",
            location="motor cortex",
        )
        timing = {"rate": rate} if timestamps is None else {"timestamps": timestamps}
        nwb.add_acquisition(
            TwoPhotonSeries(
                name=name,
                data=np.swapaxes(frames, 1, 2),
                imaging_plane=plane,
                unit="a.u.",
                **timing,
            )
        )
    if trials:
        nwb.add_trial(start_time=0.0, stop_time=1.0)
        nwb.add_trial(start_time=1.0, stop_time=2.0)
    with NWBHDF5IO(str(path), "w") as handle:
        handle.write(nwb)
