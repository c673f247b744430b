"""Rig-scale sessions (issue #19): ``python benchmarks/performance.py --rig``.

The rig (Scanbox) records 796 x 512 px, two interleaved planes at 15 volumes/s, about
54,000 volumes an hour. For each ``--rig-frames`` count (default 5000 and 20000 volumes):

1. simulate one two-plane 796 x 512 session (``python -m analysis.simulate``, the
   ``validate`` preset with ``n_rows``/``n_cols`` set) and interleave its planes into one
   uncompressed TIFF, as the rig writes (frame k belongs to plane k mod 2);
2. run the pipeline on it with ``snakemake --cores 2``, first up to both planes' traces
   (the part suite2p does), then the rest of the DAG (``rule all``: bci, stats, figures,
   QC); per job from Snakemake's benchmark files: wall, CPU, peak RSS, and the bytes of
   its outputs (disk written: the run keeps temporary outputs until they are measured;
   Snakemake's ``io_out`` misses memory-mapped writes); per session the disk written
   and the results kept, against the raw size,
   with the registered movie kept (``register.keep_movie: true``) and after dropping it
   (``keep_movie: false`` and ``snakemake --delete-temp-output``);
3. run suite2p 1.1.0's ``run_s2p`` by hand on the same interleaved TIFF (``nplanes: 2``,
   the pipeline's registration, detection and extraction settings), in the same run.

Writes the measures (``measure, value, goal``) to ``--out``, the jobs of each run
(``rig_jobs_<frames>.tsv``) and the cohort plan (``rig_cohort_plan.tsv``, see
:func:`cohort_plan`) beside it, and prints them.
"""

from __future__ import annotations

import heapq
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from performance import (
    ROOT,
    SUBJECT,
    Run,
    make_workdir,
    measure,
    python,
    registration_rate,
    snakemake,
    suite2p_settings,
)

from analysis import layout

RIG_SHAPE = (796, 512)
RIG_FRAMES = 54_000  # volumes of an hour-long session at 15 volumes/s
COHORT = {"subjects": 6, "days": 14}
NODES = (1, 4, 16)
PER_SESSION = ("ingest", "register", "segment", "map_targets", "extract", "bci")
PER_SUBJECT = ("align_days", "track", "pair", "figures_qc", "qc_subject")
PER_COHORT = ("stats", "figures", "qc")
SEED = 6


def simulate_rig(out: Path, *, frames: int, log: Path) -> Run:
    """One 796 x 512 two-plane session, planes interleaved in one uncompressed TIFF."""
    run = measure(
        python(
            "-m", "analysis.simulate", "--out", out, "--seed", SEED, "--preset", "validate",
            "--subjects", 1, "--days", 1, "--frames", frames, "--tiff-compression", "none",
            "--set", f"n_rows={RIG_SHAPE[0]}", "--set", f"n_cols={RIG_SHAPE[1]}",
        ),
        log=log,
    )  # fmt: skip
    interleave(out / "raw" / SUBJECT / "day01")
    return run


def interleave(session: Path, *, batch_frames: int = 200) -> None:
    """Replace ``plane0.tif`` and ``plane1.tif`` by one interleaved ``scan.tif``."""
    import tifffile

    from analysis import io

    planes = [session / "plane0.tif", session / "plane1.tif"]
    readers = [io.iter_tiff_frames(p, batch_frames=batch_frames) for p in planes]
    with tifffile.TiffWriter(session / "scan.tif", bigtiff=True) as tif:
        for batches in zip(*readers, strict=True):
            for frames in zip(*batches, strict=True):
                for frame in frames:
                    tif.write(frame, metadata=None)
    for path in planes:
        path.unlink()


def suite2p_by_hand(session: Path, out: Path) -> None:
    """``run_s2p`` on the interleaved TIFF, both planes (this process)."""
    import logging

    from suite2p import run_s2p

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    fs_hz = float(yaml.safe_load((session / "session.yaml").read_text())["fs_hz"])
    data = out / "data"
    data.mkdir(parents=True)
    (data / "scan.tif").symlink_to(session / "scan.tif")
    db = {"data_path": [str(data)], "save_path0": str(out), "fast_disk": str(out)}
    run_s2p(db={**db, "nplanes": 2, "nchannels": 1}, settings=suite2p_settings(fs_hz))
    for plane in (0, 1):
        if not (out / "suite2p" / f"plane{plane}" / "F.npy").is_file():
            raise RuntimeError(f"suite2p wrote no F.npy for plane {plane}")


def job_costs(work: Path) -> pd.DataFrame:
    """Per benchmarked job: wall, CPU (s), peak RSS (MB) from Snakemake's benchmark files,
    and the bytes of its outputs (MB; run with ``--notemp``, so temporary ones count)."""
    written = output_sizes(work)
    rows = []
    for path in sorted((work / "results" / "benchmarks").rglob("*.tsv")):
        rel = path.relative_to(work / "results" / "benchmarks").with_suffix("")
        bench = pd.read_csv(path, sep="\t").iloc[0]
        rule, job = rel.parts[0], "/".join(rel.parts[1:])
        rows.append(
            {
                "rule": rule,
                "job": job,
                "wall_s": float(bench["s"]),
                "cpu_s": float(bench["cpu_time"]),
                "max_rss_mb": float(bench["max_rss"]),
                "written_mb": written.get((rule, job), 0) / 1e6,
            }
        )
    columns = ["rule", "job", "wall_s", "cpu_s", "max_rss_mb", "written_mb"]
    return pd.DataFrame(rows, columns=columns)


def output_sizes(work: Path) -> dict[tuple[str, str], int]:
    """Bytes of every job's outputs, keyed (rule, job) as the benchmark files name jobs:
    ``snakemake --summary`` gives each output's rule; the job is the output's folder
    below its stage (``<subject>/<session>[/plane<k>]``), the session for ``register``."""
    listing = measure(snakemake(work, "--summary", "--notemp"), log=work / "summary.log").output
    lines = [line.split("\t") for line in listing.splitlines() if "\t" in line]
    sizes: dict[tuple[str, str], int] = {}
    for fields in lines[1:]:
        path, rule = work / fields[0], fields[2]
        if not path.is_file():
            continue
        parts = Path(fields[0]).parent.parts[2:]
        if rule == "register":
            parts = parts[:2]
        key = (rule, "/".join(parts) or rule)
        sizes[key] = sizes.get(key, 0) + path.stat().st_size
    return sizes


def kept_bytes(work: Path) -> int:
    """Bytes of the results kept (logs and benchmarks aside)."""
    results = work / "results"
    return sum(
        p.stat().st_size
        for p in results.rglob("*")
        if p.is_file() and p.relative_to(results).parts[0] not in ("logs", "benchmarks")
    )


def drop_movies(work: Path, *, log: Path) -> Run:
    """Switch ``register.keep_movie`` off and let Snakemake delete the registered movies."""
    path = work / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["register"]["keep_movie"] = False
    path.write_text(yaml.safe_dump(config))
    return measure(snakemake(work, "--cores", "2", "--delete-temp-output"), log=log)


def run_rig(
    tmp: Path, frames: int, logs: Path, *, suite2p: bool
) -> tuple[list[tuple], pd.DataFrame]:
    """Simulate, run the pipeline (and suite2p by hand) at one size; rows and job costs."""
    sim = simulate_rig(tmp / f"rig{frames}", frames=frames, log=logs / f"rig_sim{frames}.log")
    print(f"simulated {frames} rig frames in {sim.wall_s:.0f} s", flush=True)
    raw_root = tmp / f"rig{frames}" / "raw"
    session = raw_root / SUBJECT / "day01"
    raw = (session / "scan.tif").stat().st_size
    work = tmp / f"rigwork{frames}"
    make_workdir(work, raw_root, ["day01"])
    targets = [
        layout.path(key, "results", subject=SUBJECT, session="day01", plane=p)
        for p in (0, 1)
        for key in ("extract.traces", "extract.events")
    ]
    # --notemp: temporary outputs stay until measured, then go as they would have
    run = [*snakemake(work, "--cores", "2", "--notemp")]
    traces = measure([*run, *targets], log=logs / f"rig{frames}.log")
    rest = measure(run, log=logs / f"rig_all{frames}.log")
    print(f"pipeline on {frames} rig frames: {traces.wall_s:.0f} + {rest.wall_s:.0f} s", flush=True)
    jobs = job_costs(work).assign(frames=frames)
    written = kept_bytes(work)
    measure(snakemake(work, "--cores", "2", "--delete-temp-output"), log=logs / "rig_temp.log")
    kept = kept_bytes(work)
    drop_movies(work, log=logs / f"rig_drop{frames}.log")
    dropped = kept_bytes(work)
    hand = None
    if suite2p:
        hand = measure(
            python(ROOT / "benchmarks" / "performance.py", "--suite2p-rig", session, tmp / "s2p"),
            log=logs / f"rig_suite2p{frames}.log",
        )
        print(f"suite2p by hand on {frames} rig frames: {hand.wall_s:.0f} s", flush=True)
        shutil.rmtree(tmp / "s2p")
    per_frame = jobs.groupby("rule")["wall_s"].sum() / frames
    largest = jobs.loc[jobs["max_rss_mb"].idxmax()]
    largest_name = f"largest job: {largest['rule']} {largest['job']}"
    rows = [
        (f"rig_pipeline_wall_s_{frames}", traces.wall_s, "(ingest through traces)"),
        (f"rig_pipeline_rest_wall_s_{frames}", rest.wall_s, "(bci, stats, figures, QC)"),
        (f"rig_peak_rss_mb_{frames}", largest["max_rss_mb"], f"<= 6144 ({largest_name})"),
        (f"rig_register_frames_per_s_{frames}", registration_rate(work), "(per plane)"),
        (f"rig_register_s_per_frame_{frames}", per_frame.get("register", np.nan), ""),
        (f"rig_extract_s_per_frame_{frames}", per_frame.get("extract", np.nan), "(2 planes)"),
        (f"rig_raw_mb_{frames}", raw / 1e6, ""),
        (f"rig_disk_written_over_raw_{frames}", written / raw, "(temporary outputs too)"),
        (f"rig_disk_kept_over_raw_{frames}", kept / raw, "<= 1.3 (movie kept)"),
        (f"rig_disk_kept_dropped_over_raw_{frames}", dropped / raw, "<= 0.1 (movie dropped)"),
    ]
    if hand is not None:
        rows += [
            (f"rig_suite2p_by_hand_wall_s_{frames}", hand.wall_s, ""),
            (f"rig_pipeline_over_suite2p_wall_{frames}", traces.wall_s / hand.wall_s, "<= 0.8"),
            (f"rig_pipeline_over_suite2p_cpu_{frames}", traces.cpu_s / hand.cpu_s, ""),
            (f"rig_suite2p_peak_rss_mb_{frames}", hand.max_rss_mb, ""),
        ]
    shutil.rmtree(tmp / f"rig{frames}")
    shutil.rmtree(work)
    return rows, jobs


def profile_resources() -> dict[str, tuple[int, float]]:
    """Per rule (threads, mem GB) of the SLURM profile."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    threads, resources = profile["set-threads"], profile["set-resources"]
    return {r: (int(threads.get(r, 1)), resources[r]["mem_mb"] / 1000) for r in resources}


def _job_seconds(jobs: pd.DataFrame, rule: str, frames: int) -> float:
    """Wall of one ``rule`` job at ``frames`` volumes: a line through the measured sizes
    (per job: a rule with several jobs per session is averaged), flat where one size."""
    per_size = jobs[jobs["rule"] == rule].groupby("frames")["wall_s"].mean()
    if per_size.empty:
        return 0.0
    if len(per_size) == 1:
        return float(per_size.iloc[0] * frames / per_size.index[0])
    slope, intercept = np.polyfit(per_size.index.to_numpy(float), per_size.to_numpy(), 1)
    return float(max(intercept + slope * frames, per_size.min()))


def _cohort_jobs(jobs: pd.DataFrame, frames: int) -> list[tuple[str, str, float, list[str]]]:
    """(name, rule, seconds, dependencies) of every job of a 6 x 14 cohort."""
    out = []
    days = COHORT["days"]

    def cost(rule: str, scale: float = 1.0) -> float:
        return _job_seconds(jobs, rule, frames) * scale

    for s in range(COHORT["subjects"]):
        for d in range(days):
            at = f"{s}/{d}"
            out.append((f"ingest {at}", "ingest", cost("ingest"), []))
            out.append((f"register {at}", "register", cost("register"), [f"ingest {at}"]))
            for p in (0, 1):
                out.append((f"segment {at}/{p}", "segment", cost("segment"), [f"register {at}"]))
        for p in (0, 1):
            # cross-day jobs measured on one day; they read every day: scaled by the days
            registers = [f"register {s}/{d}" for d in range(days)]
            out.append((f"align_days {s}/{p}", "align_days", cost("align_days", days), registers))
            segments = [f"segment {s}/{d}/{p}" for d in range(days)]
            out.append(
                (f"track {s}/{p}", "track", cost("track", days), [f"align_days {s}/{p}", *segments])
            )
        for d in range(days):
            at = f"{s}/{d}"
            out.append((f"map_targets {at}", "map_targets", cost("map_targets"), [f"track {s}/0"]))
            for p in (0, 1):
                out.append((f"extract {at}/{p}", "extract", cost("extract"), [f"track {s}/{p}"]))
            out.append((f"bci {at}", "bci", cost("bci"),
                        [f"map_targets {at}", *(f"extract {at}/{p}" for p in (0, 1))]))  # fmt: skip
        extracts = [f"extract {s}/{d}/{p}" for d in range(days) for p in (0, 1)]
        bcis = [f"bci {s}/{d}" for d in range(days)]
        out.append((f"pair {s}", "pair", cost("pair", days), extracts))
        for rule in ("figures_qc", "qc_subject"):
            out.append((f"{rule} {s}", rule, cost(rule, days), [*bcis, f"pair {s}"]))
    n = COHORT["subjects"] * days
    subjects = range(COHORT["subjects"])
    out.append(("stats", "stats", cost("stats", n), [f"pair {s}" for s in subjects]
                + [f"bci {s}/{d}" for s in subjects for d in range(days)]))  # fmt: skip
    out.append(("figures", "figures", cost("figures", n), ["stats"]))
    out.append(("qc", "qc", cost("qc", n), ["stats", *(f"qc_subject {s}" for s in subjects)]))
    return out


def _schedule(cohort: list, resources: dict, nodes: int, cores: int, mem_gb: float) -> float:
    """Makespan (s) of the jobs on ``nodes`` identical nodes: each ready job, in DAG
    order, starts on the first node with its threads and memory free (SLURM backfill
    without priorities); a job that fits no node runs on a whole one."""
    free = [[cores, mem_gb] for _ in range(nodes)]
    done: dict[str, float] = {}
    waiting = list(cohort)
    running: list[tuple[float, str, int, int, float]] = []
    now = 0.0
    while waiting or running:
        for job in list(waiting):
            name, rule, seconds, deps = job
            if not all(d in done for d in deps):
                continue
            threads, mem = resources.get(rule, (1, 4.0))
            threads, mem = min(threads, cores), min(mem, mem_gb)
            node = next((i for i, (c, m) in enumerate(free) if c >= threads and m >= mem), None)
            if node is None:
                continue
            free[node][0] -= threads
            free[node][1] -= mem
            heapq.heappush(running, (now + seconds, name, node, threads, mem))
            waiting.remove(job)
        now, name, node, threads, mem = heapq.heappop(running)
        free[node][0] += threads
        free[node][1] += mem
        done[name] = now
    return now


def cohort_plan(jobs: pd.DataFrame, *, node_cores: int, node_mem_gb: float) -> pd.DataFrame:
    """Projected wall time of 6 mice x 14 days of hour-long rig sessions on 1, 4, 16 nodes.

    Each job's time is its measured wall on the 2-core machine, extrapolated in frames to
    :data:`RIG_FRAMES` along the line through the measured sizes; cross-day and cohort
    jobs, measured on one session, are scaled by their number of sessions (an upper
    bound: most read every session once). Each job holds its SLURM-profile threads and
    memory (``profiles/slurm/config.yaml``) on a node of ``node_cores`` cores and
    ``node_mem_gb`` GB. Job times are not shortened for the profile's extra threads.
    """
    cohort = _cohort_jobs(jobs, RIG_FRAMES)
    resources = profile_resources()
    rows = []
    for n in NODES:
        makespan = _schedule(cohort, resources, n, node_cores, node_mem_gb)
        rows.append(
            {
                "nodes": n,
                "node_cores": node_cores,
                "node_mem_gb": node_mem_gb,
                "jobs": len(cohort),
                "job_h": sum(c for _, _, c, _ in cohort) / 3600,
                "wall_h": makespan / 3600,
            }
        )
    return pd.DataFrame(rows)


def main(args) -> list[tuple[str, float, str]]:
    """The rig measures of ``performance.py --rig``; writes the job and cohort tables."""
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="bci_rig_", dir=args.tmp))
    print(f"rig benchmark data in {tmp}", flush=True)
    rows, jobs = [], {}
    try:
        for frames in args.rig_frames:
            by_hand = args.rig_suite2p_max_frames is None or frames <= args.rig_suite2p_max_frames
            size_rows, size_jobs = run_rig(tmp, frames, tmp / "logs", suite2p=by_hand)
            size_jobs.to_csv(args.out.with_name(f"rig_jobs_{frames}.tsv"), sep="\t", index=False)
            print(size_jobs.to_string(index=False), flush=True)
            rows += size_rows
            jobs[frames] = size_jobs
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    for frames in args.rig_compare:
        jobs[frames] = pd.read_csv(args.out.with_name(f"rig_jobs_{frames}.tsv"), sep="\t")
    peak = {f: j["max_rss_mb"].max() for f, j in jobs.items()}
    long = max(jobs)
    for short in sorted(f for f in jobs if f < long):
        ratio = peak[long] / peak[short]
        rows.append((f"rig_peak_rss_ratio_{long}_over_{short}", ratio, "<= 1.1"))
    plan = cohort_plan(
        pd.concat(jobs.values()), node_cores=args.node_cores, node_mem_gb=args.node_mem_gb
    )
    plan.to_csv(args.out.with_name("rig_cohort_plan.tsv"), sep="\t", index=False)
    print("\ncohort plan, 6 mice x 14 days of 54,000-volume rig sessions:")
    print(plan.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return rows
