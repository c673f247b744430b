"""HDF5: one ``*.h5`` / ``*.hdf5`` file with a (time, row, col) dataset, planes interleaved."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from analysis import io
from analysis.readers.base import (
    ImagingFormat,
    ImagingMeta,
    ImagingPlan,
    IngestError,
    IngestSettings,
    check_interleaved_count,
    interleaved_sources,
)

log = logging.getLogger(__name__)

HDF5_GLOBS = ("*.h5", "*.hdf5")


def _hdf5_stacks(path: Path) -> dict[str, tuple[tuple[int, ...], Mapping[str, Any]]]:
    """{dataset name: (shape, attrs)} of every numeric 3-D dataset in an HDF5 file."""
    import h5py

    stacks = {}

    def visit(name: str, node: Any) -> None:
        if isinstance(node, h5py.Dataset) and node.ndim == 3 and node.dtype.kind in "uif":
            stacks["/" + name] = (node.shape, dict(node.attrs))

    with io.raw_read_errors(path, "an HDF5 file", corrupt_format="HDF5 file"):
        with h5py.File(path, "r") as handle:
            handle.visititems(visit)
    return stacks


def _attr_number(attrs: Mapping[str, Any], key: str) -> float | None:
    if key not in attrs:
        return None
    value = np.asarray(attrs[key])
    return float(value.ravel()[0]) if value.size == 1 and value.dtype.kind in "uif" else None


def _hdf5_meta(folder: Path, path: Path, *, settings: IngestSettings) -> ImagingMeta:
    stacks = _hdf5_stacks(path)
    if settings.hdf5_dataset:
        name = "/" + settings.hdf5_dataset.lstrip("/")
        if name not in stacks:
            raise IngestError(
                f"{path}: no 3-D (time, row, col) dataset '{name}' (ingest.hdf5_dataset); the "
                f"file has {sorted(stacks) or 'none'}. Fix ingest.hdf5_dataset in "
                "config/config.yaml."
            )
    elif len(stacks) == 1:
        name = next(iter(stacks))
    else:
        raise IngestError(
            f"{path}: {len(stacks)} 3-D datasets {sorted(stacks)}; the movie must be the only "
            "one, or set ingest.hdf5_dataset in config/config.yaml to its path."
        )
    _, attrs = stacks[name]
    fs_hz, n_planes = _attr_number(attrs, "fs_hz"), _attr_number(attrs, "n_planes")
    origin = {
        key: f"{path} ({name} attribute '{key}')"
        for key, value in (("fs_hz", fs_hz), ("n_planes", n_planes))
        if value is not None
    }
    return ImagingMeta(
        "hdf5",
        folder,
        (path,),
        fs_hz=fs_hz,
        n_planes=None if n_planes is None else int(n_planes),
        origin=origin,
        details={"dataset": name},
    )


def _plan_hdf5(meta: ImagingMeta, n_planes: int) -> ImagingPlan:
    path = meta.files[0]
    name = meta.details["dataset"]
    shape, _ = _hdf5_stacks(path)[name]
    n_frames = check_interleaved_count(shape[0], n_planes=n_planes, source=f"{path}:{name}")
    base = {"reader": "hdf5", "file": str(path), "dataset": name}
    planes = interleaved_sources(
        base, n_planes=n_planes, n_frames=n_frames, period=n_planes, offsets=range(n_planes)
    )
    return ImagingPlan("hdf5", meta.files, n_frames, (int(shape[1]), int(shape[2])), planes)


def _iter_hdf5(source: Mapping[str, Any], batch_frames: int) -> Iterator[np.ndarray]:
    import h5py

    path = Path(source["file"])
    period, offset = source["period"], source["offset"]
    with io.raw_read_errors(path, "an HDF5 file", corrupt_format="HDF5 file"):
        with h5py.File(path, "r") as handle:
            data = handle[source["dataset"]]
            for start in range(0, source["n_frames"], batch_frames):
                stop = min(start + batch_frames, source["n_frames"])
                yield data[offset + start * period : offset + stop * period : period]


def _read_meta(folder: Path, files: list[Path], settings: IngestSettings) -> ImagingMeta:
    return _hdf5_meta(folder, files[0], settings=settings)


FORMAT = ImagingFormat("hdf5", "hdf5", HDF5_GLOBS, _read_meta, _plan_hdf5, _iter_hdf5)
