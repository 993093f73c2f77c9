"""Time a cold and a no-op `dvc repro` in a fresh clone of this repository, with peak memory.

Cold means what a new user gets: no DVC cache and an empty embedded MLflow store. Targets on
these 2-core machines: cold ≤ 120 s, no-op ≤ 5 s. Results go to bench/results/pipeline.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlops_lab.kernel.files import write_json_atomically

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"cold_seconds": 120.0, "noop_seconds": 5.0}


# Runs a command and reports the peak memory of its own descendants only: a parent's
# RUSAGE_CHILDREN is a running maximum, so a second command would inherit the first's peak.
_MEASURE = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=sys.stderr).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)
"""


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MiB) of the largest process the command ran."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command], cwd=cwd, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return seconds, int(result.stdout.strip()) / 1024


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
    write_json_atomically(ROOT / "bench" / "results" / "pipeline.json", results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
