"""Performance of the pipeline on simulated sessions, beside suite2p run by hand.

Usage (from the repository root; not part of the pytest suite)::

    python benchmarks/performance.py [--quick] [--tmp /tmp] [--keep]

Measures, each command in its own fresh child process (wall time; peak RSS of the
largest process from ``os.wait4``, i.e. ``getrusage(RUSAGE_CHILDREN)`` of that child;
peak summed PSS of the whole process tree, sampled every 0.25 s from
``/proc/<pid>/smaps_rollup``: what several parallel jobs really hold, shared libraries
counted once):

1. one 256 x 256 two-plane session (``--frames``, default 5000 volumes), ingest through
   traces: ``snakemake --cores 2`` on a one-session workdir with the two planes'
   ``extract`` outputs as targets (ingest, register, segment, align_days,
   track, extract: the jobs Snakemake runs for them; the planes run in parallel, as
   threads of one register job and as separate segment and extract jobs), against
   suite2p 1.1.0's ``run_s2p`` run by hand on the same two plane TIFFs, one plane after
   the other in one process (tiff-to-binary, registration with the pipeline's
   registration settings, sparsery detection with the pipeline's soma settings,
   extraction, classification, deconvolution; registration metrics off, as the pipeline
   computes none);
2. the same pipeline run on ``--long-frames`` (default 20000) volumes: peak memory must
   not grow with the movie's length;
3. registration throughput (frames/s per plane, from the register job's log, suite2p
   import excluded) beside reading the raw plane TIFF once (the floor);
4. the stats stage (:func:`analysis.stats.compute_cohort_statistics`, as
   ``workflow/scripts/stats.py`` calls it) on a trace-level cohort of 6 animals x 14 days
   simulated by :func:`analysis.simulate.simulate_traces` (as :mod:`analysis.calibrate`
   does), events taken from the simulator's truth;
5. after a full ``snakemake`` run of a small simulated subject, the jobs a dry run plans
   when one new day is added to the sessions table (default ``--rerun-triggers``).

``--rig`` measures 796 x 512 rig sessions instead (:mod:`rig`, ``--rig-frames``).

Prints the table and writes it to ``--out`` (default
``results/benchmarks/performance.tsv``; columns ``measure, value, goal``) and the planned
rerun jobs beside it (``rerun_jobs.tsv``). Simulated data go to a temporary folder under
``--tmp`` that is deleted at the end (``--keep`` keeps it). ``--quick`` is a smoke test
(1000/4000 frames, a 3 x 3 cohort), not a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from analysis import layout

ROOT = Path(__file__).resolve().parents[1]
SEED = 6
PLANES = (0, 1)
SUBJECT = "m01"
CROSS_DAY_RULES = ("align_days", "track", "pair", "figures_qc")
COHORT_RULES = ("stats", "figures", "all")
# what Snakemake sets for a rule with threads: 1 (the stats rule)
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
# per-session rules that read a cross-day output (track's consensus ROIs): they rerun for
# every day when a day is added, because the tracked ROI set may change
TRACK_CONSUMERS = ("map_targets", "extract", "bci")


@dataclass
class Run:
    """One measured child process (wall time, peak RSS of its largest process, tree PSS)."""

    wall_s: float
    cpu_s: float
    max_rss_mb: float
    peak_pss_mb: float
    output: str


def _children(pid: int) -> list[int]:
    """All descendants of ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found.extend(kids)
        todo.extend(kids)
    return found


def _pss_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:  # the process ended between listing and reading
        return 0.0
    match = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else 0.0


def measure(
    cmd: list[str], *, log: Path, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> Run:
    """Run ``cmd`` as a fresh child; its output goes to ``log``. Raises if it fails.

    ``cpu_s`` is the user + system time of the child and all its descendants: less
    sensitive than wall time to other work on the machine.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    peak = [0.0]
    done = threading.Event()
    with open(log, "w") as out:
        start = time.perf_counter()
        # children import the analysis package from this checkout
        env = {
            **os.environ,
            **(env or {}),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)

        def sample() -> None:
            while not done.wait(0.25):
                tree = [proc.pid, *_children(proc.pid)]
                peak[0] = max(peak[0], sum(_pss_mb(p) for p in tree))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # wait4's usage covers the child and every descendant it waited for; ru_maxrss is
        # the peak RSS of the largest of them (kB on Linux)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{text[-4000:]}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, peak[0], text)


def python(*args: str | Path) -> list[str]:
    return [sys.executable, *map(str, args)]


# --- data ------------------------------------------------------------------------------


def simulate(out: Path, *, frames: int, days: int, preset: str, log: Path) -> Run:
    """A simulated subject (``m01``) with uncompressed TIFFs (fast to write, as rigs do)."""
    return measure(
        python(
            "-m", "analysis.simulate", "--out", out, "--seed", SEED, "--preset", preset,
            "--subjects", 1, "--days", days, "--frames", frames, "--tiff-compression", "none",
        ),
        log=log,
    )  # fmt: skip


def make_workdir(work: Path, raw_root: Path, sessions: list[str]) -> None:
    """A Snakemake work folder: the repository's config pointed at ``raw_root``."""
    (work / "config").mkdir(parents=True, exist_ok=True)
    write_sessions(work, sessions)
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config.update(raw_root=str(raw_root), sessions="config/sessions.tsv", results="results")
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))


def write_sessions(work: Path, sessions: list[str]) -> None:
    rows = ["subject\tsession\tpath"] + [f"{SUBJECT}\t{s}\t{SUBJECT}/{s}" for s in sessions]
    (work / "config" / "sessions.tsv").write_text("\n".join(rows) + "\n")


def snakemake(work: Path, *args: str) -> list[str]:
    # run from the repository root, so its default profile applies as for a user
    return python("-m", "snakemake", "-s", ROOT / "Snakefile", "--directory", work, *args)


# --- 1-3: one session ---------------------------------------------------------------------


def run_pipeline_session(work: Path, raw_root: Path, *, log: Path) -> Run:
    """Snakemake, 2 cores, one session's jobs up to both planes' traces."""
    make_workdir(work, raw_root, ["day01"])
    targets = [
        layout.path(key, "results", subject=SUBJECT, session="day01", plane=p)
        for p in PLANES
        for key in ("extract.traces", "extract.events")
    ]
    return measure(snakemake(work, "--cores", "2", *targets), log=log)


def job_table(work: Path) -> pd.DataFrame:
    """Per job of a finished run: time inside the rule (from its log's first to last
    line) and, where the rule has a benchmark file, Snakemake's wall time of the whole
    job (``s``, interpreter start and imports included) and its ``max_rss`` (MB)."""
    rows = {}
    for path in sorted((work / "results" / "logs").rglob("*.log")):
        rel = path.relative_to(work / "results" / "logs").with_suffix("")
        lines = [line for line in path.read_text().splitlines() if line[:2] == "20"]
        span = _log_time(lines[-1]) - _log_time(lines[0]) if lines else np.nan
        rows[rel] = {"rule": rel.parts[0], "job": "/".join(rel.parts[1:]), "in_rule_s": span}
    for path in sorted((work / "results" / "benchmarks").rglob("*.tsv")):
        rel = path.relative_to(work / "results" / "benchmarks").with_suffix("")
        bench = pd.read_csv(path, sep="\t").iloc[0]
        rows.setdefault(rel, {"rule": rel.parts[0], "job": "/".join(rel.parts[1:])})
        rows[rel].update(s=float(bench["s"]), max_rss_mb=float(bench["max_rss"]))
    columns = ["rule", "job", "in_rule_s", "s", "max_rss_mb"]
    return pd.DataFrame(list(rows.values()), columns=columns)


def _log_time(line: str) -> float:
    stamp = time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")
    return time.mktime(stamp) + int(line[20:23]) / 1000


def registration_rate(work: Path) -> float:
    """Frames/s of register_movie per plane (suite2p import excluded; the planes run in
    parallel threads of one job), mean over the planes' lines of the job's log."""
    log = (work / "results/logs/register" / SUBJECT / "day01.log").read_text().splitlines()
    rates = []
    for plane in PLANES:
        lines = [line for line in log if f"[plane{plane}] " in line]
        start = next(line for line in lines if "registering " in line)
        stop = next(line for line in lines if "registration done" in line)
        n_frames = int(re.search(r"registering (\d+) frames", start).group(1))
        rates.append(n_frames / (_log_time(stop) - _log_time(start)))
    return float(np.mean(rates))


def read_floor(tif: Path, *, log: Path) -> float:
    """Frames/s of reading one raw plane TIFF once (analysis.io.iter_tiff_frames)."""
    code = (
        "import time, json; from analysis import io; t = time.perf_counter(); "
        f"n = sum(len(b) for b in io.iter_tiff_frames({str(tif)!r})); "
        "print(json.dumps({'frames': n, 's': time.perf_counter() - t}))"
    )
    result = json.loads(measure(python("-c", code), log=log).output.strip().splitlines()[-1])
    return result["frames"] / result["s"]


def suite2p_settings(fs_hz: float) -> dict:
    """suite2p's defaults with the pipeline's registration, detection and extraction
    settings set key by key (suite2p merges settings shallowly)."""
    from suite2p.parameters import default_settings

    from analysis.extract import ExtractSettings
    from analysis.register import RegisterSettings, _suite2p_settings
    from analysis.segment import SegmentSettings

    reg = RegisterSettings()
    seg = SegmentSettings()
    ext = ExtractSettings()
    settings = default_settings()
    settings["torch_device"] = "cpu"
    settings["fs"] = fs_hz
    settings["tau"] = seg.tau_s
    settings["diameter"] = [seg.diameter_px, seg.diameter_px]
    settings["registration"] = _suite2p_settings(reg, tuple(reg.block_size_px))
    settings["run"]["do_regmetrics"] = False  # the pipeline computes no registration PCs
    det = settings["detection"]
    det["algorithm"] = "sparsery"
    det["threshold_scaling"] = seg.threshold_scaling
    det["highpass_time"] = seg.highpass_time_bins
    det["max_overlap"] = seg.max_overlap
    det["nbins"] = seg.max_binned_frames
    det["sparsery_settings"]["highpass_neuropil"] = seg.highpass_neuropil_px
    det["sparsery_settings"]["max_ROIs"] = seg.max_rois
    det["sparsery_settings"]["spatial_scale"] = int(
        np.clip(np.round(np.log2(seg.diameter_px / 3.0)), 1, 4)
    )
    extraction = settings["extraction"]
    extraction["neuropil_coefficient"] = ext.neuropil_coefficient
    extraction["inner_neuropil_radius"] = int(ext.neuropil_inner_radius_px)
    extraction["min_neuropil_pixels"] = ext.min_neuropil_pixels
    settings["io"]["combined"] = False
    return settings


def suite2p_by_hand(session: Path, out: Path) -> None:
    """``run_s2p`` on each plane TIFF of a session, one after the other (this process)."""
    import logging

    from suite2p import run_s2p

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    fs_hz = float(yaml.safe_load((session / "session.yaml").read_text())["fs_hz"])
    for plane in PLANES:
        data = out / f"plane{plane}" / "data"
        data.mkdir(parents=True)
        (data / f"plane{plane}.tif").symlink_to(session / f"plane{plane}.tif")
        db = {
            "data_path": [str(data)],
            "save_path0": str(out / f"plane{plane}"),
            "fast_disk": str(out / f"plane{plane}"),
            "nplanes": 1,
            "nchannels": 1,
        }
        run_s2p(db=db, settings=suite2p_settings(fs_hz))
        for name in ("F.npy", "spks.npy", "iscell.npy"):  # it ran to the end
            if not (out / f"plane{plane}" / "suite2p" / "plane0" / name).is_file():
                raise RuntimeError(f"suite2p wrote no {name} for plane {plane}")


# --- 4: stats --------------------------------------------------------------------------


def cohort_tables(
    cohort: list[dict], *, fs_hz: float, params: Any, rng: np.random.Generator
) -> dict:
    """The stats stage's inputs from a trace-level cohort (events from the truth).

    ``params`` are the cohort's CLOOSE task parameters (the BCI metadata).
    """
    import xarray as xr

    from analysis import bci
    from analysis.dims import FRAME, ROI, TIME

    events, pairs, targets, epochs, trials, sessions = [], [], [], [], [], []
    soma_dff, dendrite_dff = {}, {}
    bci_settings = bci.BciSettings()
    for result in cohort:
        subject = result["subject"]
        tufts = result["geometry"]["dendrites"]
        tufts = tufts[tufts["neuron"] >= 0]
        pairs.append(
            pd.DataFrame(
                {
                    "subject": subject,
                    "soma_roi": tufts["neuron"].to_numpy(int),
                    "dendrite_roi": tufts["tuft"].to_numpy(int),
                    "paired": True,
                }
            )
        )
        for day in result["days"]:
            key = {"subject": subject, "session": day["session"]}
            ev = day["events"]
            soma = ev[ev["kind"] == "coincident"]
            for role, table, roi, amplitude in (
                ("soma", soma, "neuron", "soma_magnitude"),
                ("dendrite", ev, "tuft", "dendrite_magnitude"),
            ):
                events.append(
                    pd.DataFrame(
                        {
                            **key,
                            "plane_role": role,
                            "roi": table[roi].to_numpy(int),
                            "frame": table["frame"].to_numpy(int),
                            "peak_frame": table["frame"].to_numpy(int) + 2,
                            "time_s": table["time_s"].to_numpy(float),
                            "amplitude": table[amplitude].to_numpy(float),
                        }
                    )
                )
            targets.append(
                pd.DataFrame(
                    [
                        {**key, "target_id": t["id"], "group": t["group"], "roi": t["neuron"]}
                        for t in day["targets"]
                    ]
                )
            )
            meta = {
                "threshold": result["threshold"],
                "failure_bound": result["failure_bound"],
                "target_angle_deg": params.target_angle_deg,
                "max_trial_frames": params.max_trial_frames,
            }
            frames = day["bci"]
            epochs.append(
                bci.compute_task_error(
                    frames, meta=meta, fs_hz=fs_hz, settings=bci_settings
                ).assign(**key)
            )
            trials.append(bci.compute_trials(frames, meta=meta, fs_hz=fs_hz).assign(**key))
            n_frames = day["soma_calcium"].shape[1]
            sessions.append({**key, "fs_hz": fs_hz, "duration_s": n_frames / fs_hz})
            for dff, calcium in (
                (soma_dff, day["soma_calcium"]),
                (dendrite_dff, day["dendrite_calcium"]),
            ):
                noisy = calcium + rng.normal(0, 0.1, calcium.shape)
                dff[(subject, day["session"])] = xr.DataArray(
                    noisy.astype(np.float32),
                    dims=(ROI, TIME),
                    coords={
                        ROI: np.arange(calcium.shape[0]),
                        TIME: np.arange(n_frames) / fs_hz,
                        FRAME: (TIME, np.arange(n_frames)),
                    },
                )
    return {
        "events": pd.concat(events, ignore_index=True),
        "pairs": pd.concat(pairs, ignore_index=True),
        "targets": pd.concat(targets, ignore_index=True),
        "epochs": pd.concat(epochs, ignore_index=True),
        "trials": pd.concat(trials, ignore_index=True),
        "sessions": pd.DataFrame(sessions),
        "soma_dff": soma_dff,
        "dendrite_dff": dendrite_dff,
    }


def stats_child(n_animals: int, n_days: int, n_frames: int) -> None:
    """Simulate a trace-level cohort, time the stats stage on it; print JSON."""
    from analysis import calibrate, calibration_cohorts, simulate, stats

    start = time.perf_counter()
    settings = calibration_cohorts.cohort_settings(
        calibrate.CalibrateSettings(
            n_animals=n_animals, n_days=n_days, n_frames=n_frames, baseline_frames=1500
        ),
        simulate.settings_for("validate"),
        null=False,
    )
    cohort = simulate.simulate_traces(settings, rng=np.random.default_rng(SEED))
    tables = cohort_tables(
        cohort, fs_hz=settings.fs_hz, params=settings.task_params, rng=np.random.default_rng(SEED)
    )
    simulated = time.perf_counter() - start
    start = time.perf_counter()
    out, _ = stats.compute_cohort_statistics(**tables, settings=stats.StatsSettings())
    elapsed = time.perf_counter() - start
    print(
        json.dumps(
            {
                "simulate_s": simulated,
                "stats_s": elapsed,
                "n_events": len(tables["events"]),
                "n_sd_events": len(out["sd_events"]),
            }
        )
    )


# --- 5: reruns -------------------------------------------------------------------------


def planned_jobs(dry_run: str) -> pd.DataFrame:
    """Jobs a ``snakemake -n`` printout plans: rule and wildcards."""
    jobs, current = [], None
    for line in dry_run.splitlines():
        match = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if match:
            current = {"rule": match.group(1), "subject": "", "session": "", "plane": ""}
            jobs.append(current)
        elif current is not None and line.strip().startswith("wildcards:"):
            for item in line.split(":", 1)[1].split(","):
                name, value = item.strip().split("=", 1)
                current[name] = value
    return pd.DataFrame(jobs, columns=["rule", "subject", "session", "plane"])


def classify_job(job: pd.Series, new_session: str) -> str:
    if job["rule"] in CROSS_DAY_RULES:
        return "cross-day"
    if job["rule"] in COHORT_RULES:
        return "cohort"
    if job["session"] == new_session:
        return "new day"
    if job["rule"] in TRACK_CONSUMERS:
        return "other day, reads track output"
    return "other day"


def rerun_after_new_day(tmp: Path, *, frames: int, log_dir: Path) -> tuple[Run, pd.DataFrame]:
    """Full run on 2 days of a 3-day subject, then a dry run with day03 added."""
    raw = tmp / "rerun_sample"
    simulate(raw, frames=frames, days=3, preset="sample", log=log_dir / "simulate_rerun.log")
    work = tmp / "rerun_work"
    make_workdir(work, raw / "raw", ["day01", "day02"])
    full = measure(snakemake(work, "--cores", "2"), log=log_dir / "full_run.log")
    write_sessions(work, ["day01", "day02", "day03"])
    dry = measure(snakemake(work, "-n", "--cores", "2"), log=log_dir / "dry_run.log")
    jobs = planned_jobs(dry.output)
    jobs["category"] = [classify_job(j, "day03") for _, j in jobs.iterrows()]
    return full, jobs


# --- main ------------------------------------------------------------------------------


def write_measures(
    table: pd.DataFrame, path: Path, *, replace: str, keep_suffixes: tuple[str, ...] = ()
) -> None:
    """Write ``table`` to ``path``, keeping the rows of the other benchmark there (the
    rig rows, named ``rig_*``, and the 256 x 256 rows are measured by separate runs) and
    those ending in ``keep_suffixes`` (sizes an earlier rig run measured)."""
    if path.is_file():
        old = pd.read_csv(path, sep="\t", keep_default_na=False)
        ours = old["measure"].str.startswith("rig_")
        keep = old[~ours] if replace == "rig_" else old[ours]
        if keep_suffixes:
            kept = old["measure"].str.endswith(keep_suffixes) & ~old["measure"].isin(table.measure)
            keep = pd.concat([keep, old[kept & ours]])
        table = pd.concat([keep, table], ignore_index=True)
    table.to_csv(path, sep="\t", index=False, float_format="%.4g")


def machine() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    models = [line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line]
    return f"{models[0] if models else platform.processor()}, {os.cpu_count()} cores, no GPU"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: small sizes")
    parser.add_argument("--frames", type=int, default=None, help="volumes of the session")
    parser.add_argument("--long-frames", type=int, default=None, help="volumes, long session")
    parser.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--keep", action="store_true", help="keep the simulated data")
    parser.add_argument("--out", type=Path, default=ROOT / "results/benchmarks/performance.tsv")
    parser.add_argument("--rig", action="store_true", help="796 x 512 rig sessions (rig.py)")
    parser.add_argument("--rig-frames", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument(
        "--rig-suite2p-max-frames", type=int, help="suite2p by hand only up to this size"
    )
    parser.add_argument(
        "--rig-compare", type=int, nargs="+", default=[],
        help="sizes measured by an earlier run (its rig_jobs_<frames>.tsv and rows kept)",
    )  # fmt: skip
    parser.add_argument("--node-cores", type=int, default=32, help="cohort plan: cores a node")
    parser.add_argument("--node-mem-gb", type=float, default=256, help="cohort plan: GB a node")
    # internal: the measured children
    parser.add_argument("--suite2p-by-hand", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stats-child", nargs=3, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--suite2p-rig", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.suite2p_rig:
        import rig

        rig.suite2p_by_hand(*args.suite2p_rig)
        return 0
    if args.rig:
        import rig

        args.out.parent.mkdir(parents=True, exist_ok=True)
        table = pd.DataFrame(rig.main(args), columns=["measure", "value", "goal"])
        earlier = tuple(f"_{frames}" for frames in args.rig_compare)
        write_measures(table, args.out, replace="rig_", keep_suffixes=earlier)
        print(f"\nmachine: {machine()}")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        return 0
    if args.suite2p_by_hand:
        suite2p_by_hand(*args.suite2p_by_hand)
        return 0
    if args.stats_child:
        stats_child(*args.stats_child)
        return 0

    args.out.parent.mkdir(parents=True, exist_ok=True)
    frames = args.frames or (1000 if args.quick else 5000)
    long_frames = args.long_frames or (4000 if args.quick else 20000)
    animals, days = (3, 3) if args.quick else (6, 14)
    tmp = Path(tempfile.mkdtemp(prefix="bci_performance_", dir=args.tmp))
    logs = tmp / "logs"
    started = time.perf_counter()
    rows: list[tuple[str, float, str]] = []
    print(f"benchmark data in {tmp}", flush=True)
    try:
        runs = {}
        for n in (frames, long_frames):
            sim = simulate(tmp / f"sim{n}", frames=n, days=1, preset="validate",
                           log=logs / f"simulate{n}.log")  # fmt: skip
            print(f"simulated {n} frames in {sim.wall_s:.0f} s", flush=True)
            runs[n] = run_pipeline_session(
                tmp / f"work{n}", tmp / f"sim{n}" / "raw", log=logs / f"pipeline{n}.log"
            )
            print(f"pipeline on {n} frames: {runs[n].wall_s:.0f} s", flush=True)
            jobs_of_run = job_table(tmp / f"work{n}")
            jobs_of_run.to_csv(args.out.with_name(f"jobs_{n}.tsv"), sep="\t", index=False)
            print(jobs_of_run.to_string(index=False), flush=True)
            if n == frames:
                session = tmp / f"sim{n}" / "raw" / SUBJECT / "day01"
                hand = measure(
                    python(__file__, "--suite2p-by-hand", session, tmp / "suite2p"),
                    log=logs / "suite2p.log",
                )
                print(f"suite2p by hand on {n} frames: {hand.wall_s:.0f} s", flush=True)
                register_rate = registration_rate(tmp / f"work{n}")
                floor = read_floor(session / "plane0.tif", log=logs / "read_floor.log")
                shutil.rmtree(tmp / "suite2p")
            if not args.keep:
                shutil.rmtree(tmp / f"sim{n}")
                shutil.rmtree(tmp / f"work{n}")
        short, long = runs[frames], runs[long_frames]
        rows += [
            (f"pipeline_wall_s_{frames}", short.wall_s, ""),
            (f"suite2p_by_hand_wall_s_{frames}", hand.wall_s, ""),
            ("pipeline_over_suite2p_wall", short.wall_s / hand.wall_s, "<= 0.8"),
            (f"pipeline_cpu_s_{frames}", short.cpu_s, ""),
            (f"suite2p_by_hand_cpu_s_{frames}", hand.cpu_s, ""),
            ("pipeline_over_suite2p_cpu", short.cpu_s / hand.cpu_s, "(less noisy than wall)"),
            (f"pipeline_peak_rss_mb_{frames}", short.max_rss_mb, "(largest job)"),
            (f"suite2p_by_hand_peak_rss_mb_{frames}", hand.max_rss_mb, ""),
            (f"pipeline_peak_pss_total_mb_{frames}", short.peak_pss_mb, "(jobs at once)"),
            (f"pipeline_wall_s_{long_frames}", long.wall_s, ""),
            (f"pipeline_peak_rss_mb_{long_frames}", long.max_rss_mb, "<= 2048"),
            (f"pipeline_peak_pss_total_mb_{long_frames}", long.peak_pss_mb, "<= 2048"),
            (
                f"peak_rss_ratio_{long_frames}_over_{frames}",
                long.max_rss_mb / short.max_rss_mb,
                "<= 1.2",
            ),
            (
                f"peak_pss_total_ratio_{long_frames}_over_{frames}",
                long.peak_pss_mb / short.peak_pss_mb,
                "<= 1.2",
            ),
            ("register_frames_per_s", register_rate, ""),
            ("raw_read_frames_per_s", floor, "(floor of register_frames_per_s)"),
        ]
        stats_run = measure(
            python(__file__, "--stats-child", animals, days, 1000 if args.quick else 5000),
            log=logs / "stats.log",
            env=ONE_THREAD,
        )
        result = json.loads(stats_run.output.strip().splitlines()[-1])
        rows += [
            (f"stats_wall_s_{animals}x{days}", result["stats_s"], "<= 60"),
            (f"stats_peak_rss_mb_{animals}x{days}", stats_run.max_rss_mb, "incl. simulation"),
        ]
        full, jobs = rerun_after_new_day(tmp, frames=400, log_dir=logs)
        counts = jobs["category"].value_counts()
        rows += [
            ("full_run_wall_s_2days_400frames", full.wall_s, ""),
            ("rerun_jobs_after_new_day", float(len(jobs)), ""),
            ("rerun_jobs_new_day", float(counts.get("new day", 0)), ""),
            ("rerun_jobs_cross_day", float(counts.get("cross-day", 0)), ""),
            ("rerun_jobs_cohort", float(counts.get("cohort", 0)), ""),
            (
                "rerun_jobs_other_days_reading_track",
                float(counts.get("other day, reads track output", 0)),
                "",
            ),
            ("rerun_jobs_other_days_upstream", float(counts.get("other day", 0)), "0"),
        ]
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    table = pd.DataFrame(rows, columns=["measure", "value", "goal"])
    write_measures(table, args.out, replace="")
    jobs.to_csv(args.out.with_name("rerun_jobs.tsv"), sep="\t", index=False)
    print(f"\nmachine: {machine()}")
    print(f"benchmark wall time: {time.perf_counter() - started:.0f} s\n")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\njobs planned after adding day03 (rule, category: count):")
    print(jobs.groupby(["category", "rule"]).size().to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
