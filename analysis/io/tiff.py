"""TIFF stacks: page shapes, ScanImage metadata and frames in batches, read-only."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.io.movies import MovieFile, MovieHeader
from analysis.io.raw import RawInputError, raw_read_errors

logger = logging.getLogger(__name__)


# what tifffile logs (TiffPages._seek) when the chain of pages breaks off
_TIFF_CHAIN_ERRORS = (
    "corrupted tag list of page",
    "invalid offset to page",
    "invalid page offset",
    "invalid circular reference",
)


class _TiffChainErrors(logging.Handler):
    """Collects the page-chain errors tifffile logs instead of raising."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(marker in message for marker in _TIFF_CHAIN_ERRORS):
            self.messages.append(message)


@contextlib.contextmanager
def _tiff_chain_errors(path: Path) -> Iterator[None]:
    """Raise RawInputError when tifffile logs a broken page chain while parsing pages.

    tifffile stops at an IFD cut short or pointing past the end of the file and only
    logs it, which would silently drop the frames after it.
    """
    handler = _TiffChainErrors()
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    if handler.messages:
        raise RawInputError(
            f"{path}: TIFF page chain is broken ({handler.messages[0][:160]}); the file is "
            "truncated or corrupt: copy it again from the acquisition machine."
        )


def _tiff_layout(tif: Any, path: Path) -> tuple[int, tuple[int, int], int | None]:
    """(frames, (rows, cols), contiguous data offset or None) of an open TIFF.

    ImageJ and tifffile-shaped files state their frame count in the description; fewer
    parsed pages than that means either one contiguous block (ImageJ > 4 GB style) or a
    file cut short, which is told apart by the file size. Other files (ScanImage, most
    rigs) have one IFD per frame: a page chain that breaks off, or a last frame whose
    pixels lie past the end of the file, means a truncated file.
    """
    with _tiff_chain_errors(path):
        pages = tif.pages
        n_pages = len(pages)
    if n_pages == 0:
        raise RawInputError(f"{path}: TIFF has no image pages; re-export the stack.")
    first = pages.first.shape
    if len(first) != 2:
        raise RawInputError(f"{path}: TIFF pages must be single 2-D frames, got shape {first}.")
    size = path.stat().st_size
    if tif.is_imagej or tif.is_shaped:
        series = tif.series[0]
        n_series = int(np.prod(series.shape[:-2])) if len(series.shape) > 2 else 1
        if n_series > n_pages:
            offset = series.dataoffset
            if offset is None or offset + series.nbytes > size:
                raise RawInputError(
                    f"{path}: TIFF describes {n_series} frames but only {n_pages} are "
                    "readable; the file is truncated: copy it again from the acquisition "
                    "machine."
                )
            return n_series, (int(first[0]), int(first[1])), int(offset)
    with _tiff_chain_errors(path):
        last = pages[n_pages - 1]  # parses the page chain to the end
    if tuple(last.shape) != tuple(first):
        raise RawInputError(
            f"{path}: TIFF pages must all have one shape; first page {first}, last {last.shape}."
        )
    data_end = max(
        (o + n for o, n in zip(last.dataoffsets, last.databytecounts, strict=True)), default=0
    )
    if data_end > size:
        raise RawInputError(
            f"{path}: the last of {n_pages} TIFF frames ends at byte {data_end} but the file "
            f"has {size} bytes; the file is truncated: copy it again from the acquisition "
            "machine."
        )
    return n_pages, (int(first[0]), int(first[1])), None


def tiff_page_shapes(path: str | os.PathLike) -> tuple[int, tuple[int, int]]:
    """Number of frames in a TIFF and their (row, col) shape.

    Raises RawInputError naming the file when it is unreadable, truncated, or its
    pages disagree in shape.
    """
    import tifffile

    path = Path(path)
    with raw_read_errors(path, "a TIFF", corrupt_format="TIFF"):
        with tifffile.TiffFile(path) as tif:
            n_frames, shape, _ = _tiff_layout(tif, path)
    return n_frames, shape


def tiff_scanimage_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """ScanImage's non-varying frame data (``{"SI.hRoiManager.scanVolumeRate": ...}``).

    Read from the ScanImage 2016+ BigTIFF header (magic 117637889 at byte 16) or, in
    files without it, from the first page's Software tag. None for a TIFF that ScanImage
    did not write. Values are parsed as MATLAB literals (``[1;2]`` -> ``[[1], [2]]``).
    """
    import tifffile

    path = Path(path)
    with raw_read_errors(path, "a TIFF", corrupt_format="TIFF"):
        with tifffile.TiffFile(path) as tif:
            if not tif.is_scanimage:
                return None
            frame_data = (tif.scanimage_metadata or {}).get("FrameData")
            if not frame_data:
                frame_data = tifffile.matlabstr2py(tif.pages.first.software)
    if not isinstance(frame_data, dict):
        raise RawInputError(
            f"{path}: ScanImage metadata is not a list of 'SI.<key> = <value>' lines; the "
            "file is corrupt: copy it again from the acquisition machine."
        )
    return frame_data


def iter_tiff_frames(
    path: str | os.PathLike, *, batch_frames: int = 256, pages: Sequence[int] | None = None
) -> Iterator[np.ndarray]:
    """Yield consecutive batches ``(frames, row, col)`` of a TIFF, never the whole file.

    ``pages`` (increasing 0-based page indices) reads only those frames, e.g. one plane
    of an interleaved stack; default every page.
    """
    import tifffile

    path = Path(path)
    with raw_read_errors(path, "a TIFF", corrupt_format="TIFF"):
        with tifffile.TiffFile(path) as tif:
            n_frames, shape, offset = _tiff_layout(tif, path)
            index = np.arange(n_frames) if pages is None else np.asarray(pages, dtype=np.int64)
            if offset is not None:
                # plain reads from the data offset: a memmap's pages would stay resident
                dtype = tif.series[0].dtype.newbyteorder(tif.byteorder)  # the file's order
                header = MovieHeader(n_frames, *shape, dtype=dtype.str, fs_hz=0.0)
                with MovieFile(path, header, writable=False, offset=offset) as frames:
                    for start in range(0, len(index), batch_frames):
                        yield frames[index[start : start + batch_frames]]
                return
            for start in range(0, len(index), batch_frames):
                key = index[start : start + batch_frames]
                yield tif.asarray(key=key.tolist()).reshape(len(key), *shape)
