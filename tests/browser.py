"""Headless Chromium, as the tests open pages in it: no network beyond loopback, a new profile,
and the rendered page (after its scripts ran) as a screenshot or as its DOM."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from waiting import poll_until, skip_or_fail
from websockets.sync.client import connect


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


class DevTools:
    """One page of a headless Chromium driven over its DevTools protocol: for a page that needs
    a login set before it draws (the scheduler's UI keeps its password in localStorage)."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.calls = 0

    def call(self, method: str, **params: Any) -> dict:
        self.calls += 1
        self.socket.send(json.dumps({"id": self.calls, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self.calls:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)[
            "result"
        ].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        """What the page shows, as rendered."""
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(
            base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        )
        return path


@contextmanager
def devtools(profile: Path) -> Iterator[DevTools]:
    """A headless Chromium (as `chromium` starts it) with one blank page to drive."""
    command = [flag for flag in chromium(profile) if not flag.startswith("--virtual-time")]
    process = subprocess.Popen(
        [*command, "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        poll_until(port_file.is_file, 60, "Chromium's DevTools port")
        port = port_file.read_text().split()[0]
        pages = poll_until(
            lambda: [
                target
                for target in requests.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
                if target["type"] == "page"
            ],
            30,
            "Chromium's blank page",
        )
        with connect(pages[0]["webSocketDebuggerUrl"], max_size=None) as socket:
            page = DevTools(socket)
            page.call(
                "Emulation.setDeviceMetricsOverride",
                width=1400,
                height=1000,
                deviceScaleFactor=1,
                mobile=False,
            )
            yield page
    finally:
        process.terminate()
        process.wait(timeout=30)
