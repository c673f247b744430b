"""The workflow on a real SLURM cluster through profiles/slurm (snakemake-executor-plugin-slurm).

``test_profile_*`` check the profile itself and run in the default suite. The cluster test
is opt-in (it installs and starts system daemons and takes several minutes): run it with

    python -m pytest -m slurm tests/workflow/test_slurm.py -s

or set ``BCI_TEST_SLURM=1``. It needs root and Debian's ``slurm-wlm``, ``slurmdbd``,
``munge`` and ``mariadb-server`` (installed with apt-get when missing); without them it
skips and says why. It starts a one-node cluster on localhost (munged, MariaDB, slurmdbd
for ``sacct``, slurmctld, slurmd; every file in a temporary folder, free ports), runs the
reduced simulated sample through ``--executor slurm`` and, at the same time, locally,
checks the results are identical, prints the ``sacct`` lines of the jobs, and stops the
daemons it started. Jobs read the config from its default path, /etc/slurm/slurm.conf
(the executor drops SLURM_CONF inside jobs): the test links it there while the cluster
runs and skips on a host that already has one.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from analysis import io

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "profiles" / "slurm"
pytestmark = [pytest.mark.workflow]

# Rules that only gather targets (no job runs for them).
NOT_JOBS = {"all", "export"}
# Rules of `snakemake` (rule all) on the sample; calibrate runs only when asked for.
RUN_RULES = {
    "ingest", "register", "align_days", "segment", "track", "map_targets",
    "extract", "pair", "bci", "stats", "figures_qc", "figures",
}  # fmt: skip


def snakemake(workdir, *args, env=None, check=True):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
           "--directory", str(workdir), *args]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        )
    return result


def profile():
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


def workflow_rules():
    out = snakemake(ROOT, "--list-rules", "--workflow-profile", "none").stdout
    return {line.strip() for line in out.splitlines() if line.strip()} - NOT_JOBS


# --- the profile (default suite) ----------------------------------------------------


def test_profile_sets_memory_runtime_and_threads_of_every_rule():
    config = profile()
    assert config["executor"] == "slurm"
    rules = workflow_rules()
    assert rules >= RUN_RULES | {"calibrate"}
    resources = config["set-resources"]
    missing = sorted(rules - set(resources) | rules - set(config["set-threads"]))
    assert not missing, f"add set-threads and set-resources for {missing} to {PROFILE}"
    for rule, values in resources.items():
        assert isinstance(values["mem_mb"], int) and values["mem_mb"] >= 1000, rule
        assert isinstance(values["runtime"], int) and values["runtime"] >= 10, rule
    assert all(isinstance(n, int) and n >= 1 for n in config["set-threads"].values())
    # --cores caps the threads of remote jobs too
    assert config["cores"] >= max(config["set-threads"].values())


def test_profile_resources_reach_the_jobs():
    """A dry run with the profile plans each job with the profile's threads and memory."""
    config = profile()
    out = snakemake(ROOT, "-n", "--forceall", "--workflow-profile", str(PROFILE)).stdout
    register = config["set-resources"]["register"]
    block = out[out.index("rule register:") :]
    block = block[: block.index("\n\n")]
    assert f"threads: {config['set-threads']['register']}" in block
    assert f"mem_mb={register['mem_mb']}" in block
    assert f"runtime={register['runtime']}" in block


# --- a real cluster (opt-in) ----------------------------------------------------------

# Debian packages giving each binary the cluster needs.
BINARIES = {
    "munged": "munge", "slurmctld": "slurm-wlm", "slurmd": "slurm-wlm", "sbatch": "slurm-wlm",
    "sinfo": "slurm-wlm", "sacct": "slurm-wlm", "slurmdbd": "slurmdbd",
    "mariadbd": "mariadb-server", "mariadb-install-db": "mariadb-server",
}  # fmt: skip
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
# Inside a job the jobstep plugin drops SLURM_* variables, SLURM_CONF too, so srun reads
# the config from its default path: the test links it there for the cluster's lifetime.
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")


def which(name):
    return shutil.which(name, path=SBIN_PATH)


def ensure_slurm_installed():
    """Install the packages of missing binaries with apt-get; skip where that cannot run."""
    missing = sorted({pkg for name, pkg in BINARIES.items() if not which(name)})
    if not missing:
        return
    if os.geteuid() != 0 or not which("apt-get"):
        pytest.skip(f"SLURM packages {missing} are missing and apt-get cannot run as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *missing]):
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
        except subprocess.TimeoutExpired:
            pytest.skip(f"{' '.join(cmd)} did not finish in 20 minutes")
        if done.returncode != 0:
            pytest.skip(f"{' '.join(cmd)} failed: {(done.stdout + done.stderr)[-1500:]}")
    still = sorted(name for name in BINARIES if not which(name))
    if still:
        pytest.skip(f"after installing {missing}, still missing: {still}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, what, timeout_s=60.0, logs=()):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    tails = "\n".join(f"--- {p}\n{Path(p).read_text()[-2000:]}" for p in logs if Path(p).exists())
    raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{tails}")


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Cluster:
    """A one-node SLURM cluster with accounting, all state under ``folder``.

    Every daemon runs in the foreground as a child of this process, so :meth:`stop` ends
    exactly the processes it started. The node declares ``cpus`` and ``memory_mb``
    whatever the machine has (``SlurmdParameters=config_overrides``), so the profile's
    requests can be scheduled unchanged on a small machine.
    """

    def __init__(self, folder, *, cpus, memory_mb):
        self.folder = Path(folder)
        self.cpus, self.memory_mb = cpus, memory_mb
        self.procs = []
        self.conf = self.folder / "etc" / "slurm.conf"
        self.linked = False
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.env.pop("SLURM_JOB_ID", None)

    def _start(self, name, cmd):
        log = open(self.folder / "log" / f"{name}.out", "w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        self.procs.append((name, proc, log))
        time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited at start:\n{Path(log.name).read_text()[-3000:]}")

    def start(self):
        f = self.folder
        for sub in ("etc", "log", "munge", "db", "state", "spool"):
            (f / sub).mkdir()
        (f / "munge").chmod(0o711)
        key = f / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        socket_path = f / "munge" / "munge.socket"
        # --force: munged refuses to run as root otherwise
        self._start("munged", [which("munged"), "--foreground", "--force",
                               f"--key-file={key}", f"--socket={socket_path}",
                               f"--pid-file={f / 'munge' / 'munged.pid'}",
                               f"--log-file={f / 'log' / 'munged.log'}",
                               f"--seed-file={f / 'munge' / 'munged.seed'}"])  # fmt: skip
        wait_for(socket_path.exists, "munged's socket")

        db_port, dbd_port, ctld_port, d_port = (free_port() for _ in range(4))
        install = subprocess.run(
            [which("mariadb-install-db"), "--no-defaults", f"--datadir={f / 'db'}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            capture_output=True, text=True, env=self.env,
        )  # fmt: skip
        if install.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed:\n{install.stderr[-3000:]}")
        self._start("mariadbd", [which("mariadbd"), "--no-defaults", f"--datadir={f / 'db'}",
                                 "--user=root", "--bind-address=127.0.0.1", f"--port={db_port}",
                                 f"--socket={f / 'mysql.sock'}", "--skip-log-bin",
                                 f"--log-error={f / 'log' / 'mariadb.log'}"])  # fmt: skip
        wait_for(lambda: port_open(db_port), "MariaDB", logs=[f / "log" / "mariadb.log"])

        auth = f"AuthType=auth/munge\nAuthInfo=socket={socket_path}\n"
        dbd_conf = f / "etc" / "slurmdbd.conf"
        dbd_conf.write_text(
            f"{auth}DbdHost=localhost\nDbdAddr=127.0.0.1\nDbdPort={dbd_port}\nSlurmUser=root\n"
            "StorageType=accounting_storage/mysql\nStorageHost=127.0.0.1\n"
            f"StoragePort={db_port}\nStorageUser=root\nStorageLoc=slurm_acct_db\n"
            f"PidFile={f / 'slurmdbd.pid'}\nLogFile={f / 'log' / 'slurmdbd.log'}\n"
        )
        dbd_conf.chmod(0o600)  # slurmdbd refuses a config others can read
        host = socket.gethostname()
        self.conf.write_text(
            f"ClusterName=bcitest\nSlurmctldHost={host}(127.0.0.1)\n{auth}"
            f"SlurmctldPort={ctld_port}\nSlurmdPort={d_port}\n"
            "SlurmUser=root\nSlurmdUser=root\nMpiDefault=none\nReturnToService=2\n"
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
            "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core_Memory\n"
            "SlurmdParameters=config_overrides\n"
            f"StateSaveLocation={f / 'state'}\nSlurmdSpoolDir={f / 'spool'}\n"
            f"SlurmctldPidFile={f / 'slurmctld.pid'}\nSlurmdPidFile={f / 'slurmd.pid'}\n"
            f"SlurmctldLogFile={f / 'log' / 'slurmctld.log'}\n"
            f"SlurmdLogFile={f / 'log' / 'slurmd.log'}\n"
            "AccountingStorageType=accounting_storage/slurmdbd\n"
            f"AccountingStorageHost=localhost\nAccountingStoragePort={dbd_port}\n"
            # the munge socket for the connection to slurmdbd
            f"AccountingStoragePass={socket_path}\nAccountingStoreFlags=job_comment\n"
            "JobAcctGatherType=jobacct_gather/linux\nJobAcctGatherFrequency=task=1\n"
            f"NodeName={host} NodeAddr=127.0.0.1 CPUs={self.cpus} "
            f"RealMemory={self.memory_mb} State=UNKNOWN\n"
            f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP\n"
        )
        DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
        DEFAULT_CONF.symlink_to(self.conf)
        self.linked = True
        self._start("slurmdbd", [which("slurmdbd"), "-D"])
        wait_for(lambda: port_open(dbd_port), "slurmdbd", logs=[f / "log" / "slurmdbd.log"])
        self._start("slurmctld", [which("slurmctld"), "-D"])
        self._start("slurmd", [which("slurmd"), "-D", "-N", host])
        wait_for(
            lambda: (
                self.run(["sinfo", "-h", "-N", "-o", "%T"], check=False).stdout.strip() == "idle"
            ),
            "the node to be idle",
            logs=[f / "log" / "slurmctld.log", f / "log" / "slurmd.log"],
        )

    def run(self, cmd, check=True):
        return subprocess.run(cmd, capture_output=True, text=True, env=self.env, check=check)

    def stop(self):
        for _, proc, log in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
        self.procs.clear()
        if self.linked:
            DEFAULT_CONF.unlink()
            self.linked = False


def slurm_opted_in(config):
    return "slurm" in (config.getoption("markexpr") or "") or os.environ.get("BCI_TEST_SLURM")


@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory):
    if not slurm_opted_in(request.config):
        pytest.skip("opt-in: python -m pytest -m slurm tests/workflow/test_slurm.py")
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("a local SLURM cluster needs Linux and root (slurmd, munged)")
    ensure_slurm_installed()
    if DEFAULT_CONF.exists() or DEFAULT_CONF.is_symlink():
        pytest.skip(f"{DEFAULT_CONF} exists (a configured SLURM host, or this test running)")
    config = profile()
    # room for several of the largest jobs at once (declared, not real, memory)
    largest_mem = max(v["mem_mb"] for v in config["set-resources"].values())
    cluster = Cluster(
        tmp_path_factory.mktemp("slurm"),
        cpus=max(os.cpu_count() or 1, *config["set-threads"].values()),
        memory_mb=4 * largest_mem,
    )
    try:
        try:
            cluster.start()
        except (OSError, RuntimeError) as err:
            pytest.skip(f"SLURM could not be started here: {err}")
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The reduced simulated sample of test_workflow.py, and a config pointing at it."""
    root = tmp_path_factory.mktemp("slurm-sample")
    subprocess.run(
        [sys.executable, "-m", "analysis.simulate", "--out", str(root / "sample"), "--seed", "3",
         "--days", "2", "--frames", "400"],
        check=True, capture_output=True,
    )  # fmt: skip
    raw = root / "sample" / "raw"
    sessions = sorted(p.relative_to(raw) for p in raw.glob("*/*") if p.is_dir())
    config_dir = root / "config"
    config_dir.mkdir()
    rows = ["subject\tsession\tpath"] + [f"{p.parts[0]}\t{p.parts[1]}\t{p}" for p in sessions]
    (config_dir / "sessions.tsv").write_text("\n".join(rows) + "\n")
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config.update(raw_root=str(raw), sessions="config/sessions.tsv", results="results")
    (config_dir / "config.yaml").write_text(yaml.safe_dump(config))
    return config_dir


def workdir_with(config_dir, name):
    work = config_dir.parent / name
    shutil.copytree(config_dir, work / "config")
    return work


def compared_results(folder):
    """Results by relative path, without logs, benchmarks and images (times, render
    metadata)."""
    results = Path(folder) / "results"
    return {
        str(p.relative_to(results)): p
        for p in sorted(results.rglob("*"))
        if p.is_file()
        and p.relative_to(results).parts[0] not in ("logs", "benchmarks")
        and p.suffix not in (".png", ".svg")
    }


SACCT_FIELDS = ("JobID", "Comment", "State", "ExitCode", "Elapsed", "AllocCPUS", "ReqMem",
                "MaxRSS")  # fmt: skip
# the same, as sacct prints them for people
SACCT_WIDE = "JobID%10,Comment%44,State,ExitCode,Elapsed,AllocCPUS,ReqMem,MaxRSS"


def sacct_rows(cluster):
    out = cluster.run(["sacct", "-a", "-P", "-n", "-S", "2000-01-01",
                       "-o", ",".join(SACCT_FIELDS)]).stdout  # fmt: skip
    return [dict(zip(SACCT_FIELDS, line.split("|"), strict=True)) for line in out.splitlines()]


def megabytes(value):
    """sacct memory (``2000M``, ``512K``, ``1.5G``; empty for none) in MB."""
    if not value:
        return 0.0
    scale = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2}
    return float(value[:-1]) * scale[value[-1]] if value[-1] in scale else float(value) / 2**20


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_run_matches_local_run(cluster, sample):
    local, on_slurm = workdir_with(sample, "local"), workdir_with(sample, "on-slurm")
    # The local run goes on beside the SLURM run, which mostly waits on job start-up.
    start = time.monotonic()
    with open(local / "snakemake.out", "w") as out:
        local_run = subprocess.Popen(
            [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
             "--directory", str(local), "--cores", "2"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            snakemake(
                on_slurm, "--workflow-profile", str(PROFILE),
                "--slurm-init-seconds-before-status-checks", "5", env=cluster.env,
            )  # fmt: skip
        finally:
            slurm_s = time.monotonic() - start
            local_rc = local_run.wait()
    both_s = time.monotonic() - start
    assert local_rc == 0, (local / "snakemake.out").read_text()[-6000:]

    ref, new = compared_results(local), compared_results(on_slurm)
    assert sorted(ref) == sorted(new)
    stats = [name for name in ref if name.startswith("stats/")]
    assert stats
    for name in stats:
        assert ref[name].read_bytes() == new[name].read_bytes(), name
    for name, path in ref.items():
        if path.suffix == ".nc":  # HDF5 stores object timestamps: compare the content
            with io.read_netcdf(path) as a, io.read_netcdf(new[name]) as b:
                assert a.identical(b), name
        else:
            assert path.read_bytes() == new[name].read_bytes(), name

    # sacct: every job of the run finished, with the profile's CPUs and memory
    def finished():
        rows = [r for r in sacct_rows(cluster) if "." not in r["JobID"]]
        return rows and all(r["State"] not in ("PENDING", "RUNNING") for r in rows)

    wait_for(finished, "sacct to record every job", timeout_s=60)
    rows = sacct_rows(cluster)
    report = cluster.run(["sacct", "-a", "-S", "2000-01-01", "-o", SACCT_WIDE]).stdout
    (on_slurm / "sacct.txt").write_text(report + "\n")
    print(f"\nSLURM run {slurm_s:.0f} s; with the local run beside it {both_s:.0f} s. sacct:")
    print(report)

    config = profile()
    jobs = {r["JobID"]: r for r in rows if "." not in r["JobID"]}
    steps = [r for r in rows if "." in r["JobID"]]
    assert {r["Comment"].split("_wildcards")[0].removeprefix("rule_") for r in jobs.values()} == (
        RUN_RULES
    )
    for job_id, job in jobs.items():
        rule = job["Comment"].split("_wildcards")[0].removeprefix("rule_")
        assert (job["State"], job["ExitCode"]) == ("COMPLETED", "0:0"), job
        assert int(job["AllocCPUS"]) == config["set-threads"][rule], job
        assert megabytes(job["ReqMem"]) == config["set-resources"][rule]["mem_mb"], job
        peak = max(megabytes(s["MaxRSS"]) for s in steps if s["JobID"].split(".")[0] == job_id)
        assert 0 < peak < megabytes(job["ReqMem"]), (job, peak)
