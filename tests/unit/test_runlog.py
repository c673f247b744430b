"""analysis.runlog: per-rule log files, progress lines, failures naming their input."""

import logging

import numpy as np
import pytest

from analysis import io
from analysis.runlog import Progress, rule_log


def test_progress_logs_every_update_with_count_and_rate(caplog):
    caplog.set_level(logging.INFO)
    progress = Progress(logging.getLogger("demo"), "registration", 250, interval_s=0)
    for n in (100, 100, 50):
        progress.update(n)
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" (")[0] for line in lines] == [
        "registration: 100/250 frames",
        "registration: 200/250 frames",
        "registration: 250/250 frames",
    ]
    assert all("frames/s" in line for line in lines)
    assert lines[-1].startswith("registration: 250/250 frames (100%)")


def test_progress_throttles_to_interval_but_always_logs_the_end(caplog):
    caplog.set_level(logging.INFO)
    progress = Progress(logging.getLogger("demo"), "extraction", 1000, interval_s=3600)
    for _ in range(10):
        progress.update(100)
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "extraction: 1000/1000 frames"
    ]


@pytest.fixture
def movie(tmp_path):
    path = tmp_path / "movie.bin"
    out = io.create_movie(path, io.MovieHeader(10, 8, 8, dtype="int16", fs_hz=10.0))
    out[:] = np.arange(10, dtype=np.int16)[:, None, None]
    out.flush()
    del out
    return path


def run_failing_rule(log_path, inputs, action):
    with pytest.raises(Exception) as err, rule_log(log_path, rule="demo", inputs=inputs):
        action()
    return err.value, log_path.read_text()


def test_failure_on_a_truncated_movie_names_that_input(tmp_path, movie, capsys):
    other = str(tmp_path / "rois.nc")
    with open(movie, "r+b") as f:  # a job killed while writing it
        f.truncate(100)
    err, log = run_failing_rule(
        tmp_path / "demo.log", [str(movie), other], lambda: io.open_movie(movie)
    )
    assert isinstance(err, OSError)
    failure = next(line for line in log.splitlines() if "rule demo failed" in line)
    assert f"failed on input {movie}:" in failure
    assert other not in failure
    assert "truncated or stale" in failure
    assert f"failed on input {movie}:" in capsys.readouterr().err


def test_failure_on_a_stale_header_names_the_movie(tmp_path, movie):
    header = io.movie_header_path(movie)
    meta = io.read_json(header)
    io.write_json({**meta, "n_frames": 12}, header)  # header of an older, longer run
    _, log = run_failing_rule(tmp_path / "demo.log", [str(movie)], lambda: io.open_movie(movie))
    assert f"rule demo failed on input {movie}:" in log


def test_missing_input_named_through_oserror_filename(tmp_path):
    missing = str(tmp_path / "gone.tsv")
    _, log = run_failing_rule(
        tmp_path / "demo.log", [missing, str(tmp_path / "movie.bin")], lambda: open(missing)
    )
    assert f"rule demo failed on input {missing}:" in log


def test_longer_input_name_is_not_mistaken_for_a_shorter_one(tmp_path, movie):
    header = str(io.movie_header_path(movie))

    def fail():
        raise ValueError(f"{header}: unreadable.")

    _, log = run_failing_rule(tmp_path / "demo.log", [str(movie), header], fail)
    assert f"rule demo failed on input {header}:" in log


def test_error_naming_no_input_lists_all_inputs(tmp_path):
    inputs = [str(tmp_path / "a.nc"), str(tmp_path / "b.tsv")]

    def fail():
        raise ValueError("masks are 8x8 px but the movie is 9x9 px")

    _, log = run_failing_rule(tmp_path / "demo.log", inputs, fail)
    assert f"rule demo failed on inputs {inputs[0]}, {inputs[1]}: masks are 8x8" in log


def test_successful_rule_logs_start_and_finish(tmp_path):
    log_path = tmp_path / "demo.log"
    with rule_log(log_path, rule="demo", inputs=["x.tsv"]) as log:
        log.info("working")
    text = log_path.read_text()
    assert "rule demo started; inputs: x.tsv" in text
    assert "working" in text
    assert "rule demo finished" in text
