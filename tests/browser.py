"""Headless Chromium, as the tests open pages in it: no network beyond loopback, a new profile,
and the rendered page (after its scripts ran) as a screenshot or as its DOM."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from waiting import skip_or_fail


def chromium(profile: Path) -> list[str]:
    """The command line of a headless Chromium; a skip (a failure in CI) where there is none."""
    found = shutil.which("chromium")
    if found is None:
        skip_or_fail("no chromium to open the page in: apt-get install chromium (.ci/run does)")
    return [
        found,
        *("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"),
        *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
        # No network but loopback: the page must carry everything it draws with.
        "--proxy-server=127.0.0.1:9",
        f"--user-data-dir={profile}",
        "--window-size=1280,2000",
        "--virtual-time-budget=20000",
    ]


def screenshot(browser: list[str], page: str, path: Path) -> Path:
    """A PNG of the page once it has drawn itself."""
    subprocess.run([*browser, f"--screenshot={path}", page], capture_output=True, timeout=120)
    return path


def rendered_body(browser: list[str], page: str) -> str:
    """The page's body as its scripts left it: what a person sees, not the data they carry."""
    dom = subprocess.run(
        [*browser, "--dump-dom", page], capture_output=True, text=True, timeout=120
    ).stdout
    return dom.split("<body", 1)[1]
