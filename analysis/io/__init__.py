"""All reading and writing of pipeline artifacts.

Contracts between stages are self-describing files (DESIGN.md section 3): NetCDF via
xarray (h5netcdf engine) with named dims and provenance attrs, tidy TSV tables, and
registered movies as raw binary with a JSON header. Every write goes to a temporary
file first and is renamed into place, so an interrupted run never leaves a partial file
under a finished name.

Modules: ``results`` (result files, atomic, with provenance), ``netcdf`` (NetCDF written
block by block, atomic), ``scratch`` (temporary on-disk arrays beside an output),
``movies`` (binary movies), ``raw`` (raw session input, read-only), ``tiff`` (TIFF stacks).
"""

from __future__ import annotations

from analysis.io.movies import MovieFile, MovieHeader, create_movie, movie_header_path, open_movie
from analysis.io.netcdf import NetcdfWriter
from analysis.io.raw import (
    RawInputError,
    raw_read_errors,
    read_raw_json,
    read_raw_table,
    read_stimdata,
    read_yaml,
    sha256_file,
)
from analysis.io.results import (
    OutputWriteError,
    atomic_path,
    output_write_errors,
    provenance,
    read_json,
    read_netcdf,
    read_tsv,
    save_figure,
    write_json,
    write_netcdf,
    write_text,
    write_tsv,
)
from analysis.io.scratch import DiskArray, scratch_array
from analysis.io.tiff import iter_tiff_frames, tiff_page_shapes, tiff_scanimage_metadata

__all__ = [
    "raw_read_errors",
    "DiskArray",
    "MovieFile",
    "MovieHeader",
    "NetcdfWriter",
    "OutputWriteError",
    "RawInputError",
    "atomic_path",
    "create_movie",
    "iter_tiff_frames",
    "movie_header_path",
    "open_movie",
    "output_write_errors",
    "provenance",
    "read_json",
    "read_netcdf",
    "read_raw_json",
    "read_raw_table",
    "read_stimdata",
    "read_tsv",
    "read_yaml",
    "save_figure",
    "scratch_array",
    "sha256_file",
    "tiff_page_shapes",
    "tiff_scanimage_metadata",
    "write_json",
    "write_netcdf",
    "write_text",
    "write_tsv",
]
