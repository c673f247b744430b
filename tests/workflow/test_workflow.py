"""The Snakemake workflow: lint, dry run, and a full run on a reduced simulated sample.

The full run uses a small simulated subject (2 days, 400 frames per plane) in a temporary
folder, with the raw folder made read-only, and checks every stage's outputs, that the
raw files are unchanged, and that a rerun has nothing to do.
"""

import hashlib
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.workflow]

# Rules run in the one editable install (STYLE.md: no per-rule conda envs), so this lint
# is expected; any other lint fails the test.
ACCEPTED_LINTS = {"Specify a conda environment or container for each rule."}
RULES = (
    "ingest", "ingest_plane", "register", "align_days", "segment", "track", "map_targets",
    "extract", "pair", "bci", "stats", "figures_qc", "figures",
)  # fmt: skip
PAPER_FIGURES = (
    "fig1_learning", "fig2_sd_fits", "fig3_residuals_group_epoch", "fig4_outcome_residuals",
    "ed13_signed_separation",
)  # fmt: skip


def snakemake(workdir, *args, check=True):
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        )
    return result


def sha256_tree(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(folder).rglob("*"))
        if p.is_file()
    }


def set_writable(folder, writable):
    for path in [Path(folder), *Path(folder).rglob("*")]:
        mode = path.stat().st_mode
        bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~bits)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A work folder with a reduced simulated sample and a config pointing at it."""
    work = tmp_path_factory.mktemp("workflow")
    sample = work / "sample"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "analysis.simulate",
            "--out",
            str(sample),
            "--seed",
            "3",
            "--days",
            "2",
            "--frames",
            "400",
        ],
        check=True,
        capture_output=True,
    )
    sessions = sorted(
        p.relative_to(sample / "raw") for p in (sample / "raw").glob("*/*") if p.is_dir()
    )
    (work / "config").mkdir()
    rows = ["subject\tsession\tpath"] + [f"{p.parts[0]}\t{p.parts[1]}\t{p}" for p in sessions]
    (work / "config" / "sessions.tsv").write_text("\n".join(rows) + "\n")
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config.update(raw_root=str(sample / "raw"), sessions="config/sessions.tsv", results="results")
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    yield work
    set_writable(sample, True)


def test_lint(workdir):
    result = snakemake(workdir, "--lint", check=False)
    lints = {
        line.strip()[2:].rstrip(":")
        for line in (result.stdout + result.stderr).splitlines()
        if line.startswith("    * ")
    }
    assert lints <= ACCEPTED_LINTS, lints


def test_dry_run_plans_every_stage(workdir):
    out = snakemake(workdir, "-n", "--cores", "2").stdout
    for rule in RULES:
        assert f"rule {rule}:" in out or f"\n{rule} " in out, rule


def test_mistyped_config_key_stops_at_start(workdir, tmp_path):
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    config["register"]["nonrigd"] = False
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "-n", "--configfile", str(bad), check=False)
    assert result.returncode != 0
    assert "nonrigd" in result.stdout + result.stderr


@pytest.mark.slow
def test_full_run_on_reduced_sample(workdir):
    raw = workdir / "sample" / "raw"
    before = sha256_tree(raw)
    set_writable(raw, False)
    # (root ignores permission bits; the checksums below prove nothing was written anyway)
    snakemake(workdir, "--cores", "2")
    assert sha256_tree(raw) == before

    results = workdir / "results"
    subjects = [p.name for p in raw.iterdir()]
    for subject in subjects:
        for session in sorted(p.name for p in (raw / subject).iterdir()):
            assert (
                results / "register" / subject / session / "plane0" / "registration.nc"
            ).is_file()
            trials = pd.read_csv(results / "bci" / subject / session / "trials.tsv", sep="\t")
            assert set(trials["outcome"]) <= {"hit", "failure", "timeout"}
            agreement = pd.read_csv(
                results / "bci" / subject / session / "replay_agreement.tsv", sep="\t"
            )
            assert agreement["corr"].iloc[0] > 0.8
        assert (results / "track" / subject / "pairs.tsv").is_file()
    tests = pd.read_csv(results / "stats" / "tests.tsv", sep="\t")
    assert "group_x_epoch_signed_separation_within_animal_label_permutation" in set(tests["test"])
    summary = (results / "stats" / "summary.txt").read_text()
    assert "Conclusion at alpha" in summary
    for name in PAPER_FIGURES:
        assert (results / "figures" / f"{name}.svg").stat().st_size > 0
        assert (results / "figures" / f"{name}.png").stat().st_size > 0
    assert not list(results.rglob("*.part")), "partial files left behind"

    rerun = snakemake(workdir, "-n", "--cores", "2").stdout
    assert "Nothing to be done" in rerun
    shutil.rmtree(results / "figures")
    snakemake(workdir, "--cores", "2", "figures")
    assert (results / "figures" / "fig1_learning.png").is_file()
