"""Compare two results folders: every TSV byte for byte, NetCDF and JSON by content.

Used to show a refactor leaves the sample run's ``results/`` unchanged::

    python benchmarks/compare_results.py /tmp/results_before results

- ``.tsv``, ``.txt``, ``.yaml``, ``.bin`` (movies): byte for byte.
- ``.nc``: ``xarray.Dataset.identical`` (values, coords, dims and attrs, provenance attrs
  included: they hold the package version, stage, settings and input paths, no times).
- ``.json``: parsed and compared as objects.
- ``.npy``: equal arrays (NaN equal to NaN); pickled dicts (suite2p's ``ops.npy``)
  compared entry by entry.
- Anything else (figures, QC pages, NWB files, logs, benchmarks) is listed as not compared:
  PNG, PDF, HTML and NWB embed creation times or renderer details.

The two folders must hold the same set of compared files. Exit status 0 when all agree,
1 otherwise (each difference is printed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import xarray as xr

BYTES = {".tsv", ".txt", ".yaml", ".bin"}
SKIP_DIRS = {"logs", "benchmarks"}


def _files(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and not SKIP_DIRS & set(p.relative_to(root).parts[:1])
    }


def _same(a: Path, b: Path) -> bool | None:
    """True/False when the kind is compared, None when it is not."""
    suffix = a.suffix
    if suffix in BYTES:
        return a.read_bytes() == b.read_bytes()
    if suffix == ".nc":
        with xr.open_dataset(a, engine="h5netcdf") as x, xr.open_dataset(b, engine="h5netcdf") as y:
            return x.load().identical(y.load())
    if suffix == ".json":
        return json.loads(a.read_text()) == json.loads(b.read_text())
    if suffix == ".npy":
        return _same_value(np.load(a, allow_pickle=True), np.load(b, allow_pickle=True))
    return None


def _same_value(x: object, y: object) -> bool:
    """Equal values, arrays element-wise (NaN equal to NaN), dicts and lists recursively."""
    if isinstance(x, np.ndarray) and x.dtype == object:
        if not isinstance(y, np.ndarray) or x.shape != y.shape:
            return False
        return all(_same_value(u, v) for u, v in zip(x.ravel(), y.ravel(), strict=True))
    if isinstance(x, dict):
        return (
            isinstance(y, dict) and x.keys() == y.keys() and all(_same_value(x[k], y[k]) for k in x)
        )
    if isinstance(x, (list, tuple)):
        return (
            isinstance(y, (list, tuple))
            and len(x) == len(y)
            and all(_same_value(u, v) for u, v in zip(x, y, strict=True))
        )
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape:
            return False
        if x.dtype.kind in "fc" or y.dtype.kind in "fc":
            return bool(np.array_equal(x, y, equal_nan=True))
        return bool(np.array_equal(x, y))
    if isinstance(x, float) and isinstance(y, float) and x != x and y != y:
        return True
    return bool(x == y)


def compare_results(before: Path, after: Path) -> list[str]:
    """Differences between two results folders (empty when they agree)."""
    a, b = _files(before), _files(after)
    problems = [f"only in {before}: {k}" for k in sorted(a.keys() - b.keys())]
    problems += [f"only in {after}: {k}" for k in sorted(b.keys() - a.keys())]
    counts: dict[str, int] = {}
    for key in sorted(a.keys() & b.keys()):
        same = _same(a[key], b[key])
        kind = a[key].suffix if same is not None else "not compared"
        counts[kind] = counts.get(kind, 0) + 1
        if same is False:
            problems.append(f"differs: {key}")
    print(", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    problems = compare_results(args.before, args.after)
    for line in problems:
        print(line)
    print("identical" if not problems else f"{len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
