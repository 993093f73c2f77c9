"""Time `make setup` in a fresh clone, as on a fresh machine (empty caches) and with warm caches,
against the peer a user would otherwise reach for: pip installing the same lock.

Fresh means: no .venv, no .uv, an empty uv cache and an empty pip cache (both point at new
folders). Target on these 2-core machines: fresh `make setup` ≤ 60 s. Results go to
bench/results/setup.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlops_lab.common.files import write_json_atomically

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"fresh_make_setup_seconds": 60.0}


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall seconds of a command that must succeed."""
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return seconds


def clone(scratch: Path, name: str) -> Path:
    destination = scratch / name
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(destination)], check=True)
    return destination


def main() -> None:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="mlops-lab-bench-setup-") as scratch_name:
        scratch = Path(scratch_name)
        env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
        env["UV_CACHE_DIR"] = str(scratch / "uv-cache")
        env["PIP_CACHE_DIR"] = str(scratch / "pip-cache")

        print("make setup, fresh machine (empty caches) …", flush=True)
        results["fresh_make_setup_seconds"] = timed(["make", "setup"], clone(scratch, "a"), env)
        print(f"  {results['fresh_make_setup_seconds']:.1f} s", flush=True)

        print("make setup, another clone with warm caches …", flush=True)
        results["warm_make_setup_seconds"] = timed(["make", "setup"], clone(scratch, "b"), env)
        print(f"  {results['warm_make_setup_seconds']:.1f} s", flush=True)

        print("make setup again in that clone (nothing changed) …", flush=True)
        results["noop_make_setup_seconds"] = timed(["make", "setup"], scratch / "b", env)

        # The peer: a venv and pip installing the same lock, with an empty pip cache.
        peer = clone(scratch, "pip")
        env["PIP_CACHE_DIR"] = str(scratch / "pip-cache-peer")
        print("pip: venv + pip install -r requirements/dev.lock, empty cache …", flush=True)
        results["fresh_pip_seconds"] = timed(
            [sys.executable, "-m", "venv", ".venv"], peer, env
        ) + timed(
            [
                ".venv/bin/python",
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--requirement",
                "requirements/dev.lock",
            ],
            peer,
            env,
        )
        print(f"  {results['fresh_pip_seconds']:.1f} s", flush=True)
    document = {
        **{name: round(value, 1) for name, value in results.items()},
        "pip_to_make_setup_ratio_fresh": round(
            results["fresh_pip_seconds"] / results["fresh_make_setup_seconds"], 1
        ),
        "targets": TARGETS,
        "met": {name: results[name] <= target for name, target in TARGETS.items()},
        "cpu_count": os.cpu_count(),
    }
    write_json_atomically(ROOT / "bench" / "results" / "setup.json", document)
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
