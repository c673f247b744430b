"""Headless Chromium for the QC page test: render a page from disk, read its self-test.

Debian's ``chromium`` (installed by ``.ci/run``); tests skip, naming it, where it is absent.
"""

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SELFTEST = re.compile(r'<pre id="qc-selftest">(.*?)</pre>', re.S)


def chromium() -> str:
    """The browser executable, or skip the test with the reason."""
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    pytest.skip(
        "headless Chromium not found: install Debian's chromium (apt-get install chromium; "
        ".ci/run does) to run the QC page browser test"
    )


def run_chromium(page: Path, *args: str, height_px: int = 2600) -> subprocess.CompletedProcess:
    cmd = [
        chromium(),
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        f"--window-size=1400,{height_px}",
        "--virtual-time-budget=10000",
        *args,
        page.as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True)


def page_selftest(page: Path) -> dict:
    """Render ``page`` and return what its script wrote into ``#qc-selftest``.

    Console errors Chromium logs (e.g. a syntax error, before the page's own error
    collector runs) are added to ``errors``.
    """
    result = run_chromium(page, "--dump-dom")
    found = SELFTEST.search(result.stdout)
    text = html.unescape(found.group(1)) if found else ""
    report = json.loads(text) if text else {"errors": ["the page wrote no self-test"]}
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line and "rror" in line]
    return {**report, "errors": report.get("errors", []) + console}


def screenshot(page: Path, png: Path, *, height_px: int = 2600) -> Path:
    run_chromium(page, f"--screenshot={png}", height_px=height_px)
    return png
