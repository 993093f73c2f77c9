"""Time a cold and a no-op `dvc repro` in a fresh clone of this repository, with peak memory.

Cold means what a new user gets: no DVC cache and an empty embedded MLflow store. Targets on
these 2-core machines: cold ≤ 120 s, no-op ≤ 5 s. Results go to bench/results/pipeline.json.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"cold_seconds": 120.0, "noop_seconds": 5.0}


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MiB) of the largest process the command ran."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return seconds, peak


def main() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    with tempfile.TemporaryDirectory(prefix="mlops-lab-bench-") as scratch:
        clone = Path(scratch) / "lab"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        print(f"cold dvc repro in a fresh clone of {ROOT} …", flush=True)
        cold, cold_peak = timed(["dvc", "repro"], clone, env)
        print(f"  {cold:.1f} s, peak {cold_peak:.0f} MiB", flush=True)
        noop, noop_peak = timed(["dvc", "repro"], clone, env)
        print(f"no-op dvc repro: {noop:.2f} s, peak {noop_peak:.0f} MiB", flush=True)
    results = {
        "cold_seconds": round(cold, 1),
        "cold_peak_mib": round(cold_peak),
        "noop_seconds": round(noop, 2),
        "noop_to_cold_ratio": round(noop / cold, 4),
        "targets": TARGETS,
        "met": {
            name: results_value <= TARGETS[name]
            for name, results_value in (("cold_seconds", cold), ("noop_seconds", noop))
        },
        "cpu_count": os.cpu_count(),
    }
    output = ROOT / "bench" / "results" / "pipeline.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
