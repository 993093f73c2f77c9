"""Time `dvc repro` in a fresh clone of this repository, with peak memory: cold, no-op, and
after changing one parameter of one candidate that is neither the winner nor one of its members.

Cold means what a new user gets: no DVC cache, no candidates' cache and an empty embedded MLflow
store. After the change, only that candidate may be trained again, and the metrics must equal
those of a cold run with the same change (a second clone). Targets on these 2-core machines:
cold ≤ 150 s, one candidate changed ≤ 60 s, no-op ≤ 2 s. Results go to
bench/results/pipeline.json.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlops_lab.common.files import write_json_atomically

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"cold_seconds": 150.0, "one_candidate_changed_seconds": 60.0, "noop_seconds": 2.0}
# A candidate outside the winner (routed_blend) and its members, and a parameter of it.
CHANGED_CANDIDATE = "gradient_boosting"
CHANGE = ("learning_rate: 0.1\n", "learning_rate: 0.12\n")
METRICS = ("metrics/training.json", "metrics/explainability.json")


# Runs a command and reports the peak memory of its own descendants only: a parent's
# RUSAGE_CHILDREN is a running maximum, so a second command would inherit the first's peak.
_MEASURE = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=sys.stderr, stderr=sys.stderr).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)
"""


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak resident memory (MiB) of the largest process the command ran, and
    what it printed."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command], cwd=cwd, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return seconds, int(result.stdout.strip()) / 1024, result.stderr


def trained_candidates(log: str) -> list[str]:
    """The candidates a training run fitted rather than reused."""
    return re.findall(r"\[\d+/\d+\] (\w+): (?:cross-validating|assembled from)", log)


def change_one_candidate(clone: Path) -> None:
    """Change one parameter of CHANGED_CANDIDATE in a clone's config.yaml."""
    config = clone / "config.yaml"
    text = config.read_text()
    start = text.index(f"\n    {CHANGED_CANDIDATE}:\n")
    # The candidate's settings end where the next candidate's key begins.
    end = re.compile(r"\n    \w+:\n").search(text, start + 1).start()
    section = text[start:end]
    assert CHANGE[0] in section, f"{CHANGE[0]!r} is not in {CHANGED_CANDIDATE}'s settings"
    config.write_text(text[:start] + section.replace(*CHANGE) + text[end:])


def metrics_of(clone: Path) -> dict[str, object]:
    return {path: json.loads((clone / path).read_text()) for path in METRICS}


def main() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    with tempfile.TemporaryDirectory(prefix="mlops-lab-bench-") as scratch:
        clone = Path(scratch) / "lab"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        print(f"cold dvc repro in a fresh clone of {ROOT} …", flush=True)
        cold, cold_peak, _ = timed(["dvc", "repro"], clone, env)
        print(f"  {cold:.1f} s, peak {cold_peak:.0f} MiB", flush=True)
        noop, noop_peak, _ = timed(["dvc", "repro"], clone, env)
        print(f"no-op dvc repro: {noop:.2f} s, peak {noop_peak:.0f} MiB", flush=True)

        change_one_candidate(clone)
        print(f"dvc repro after changing {CHANGED_CANDIDATE}'s {CHANGE[0].strip()} …", flush=True)
        changed, changed_peak, log = timed(["dvc", "repro"], clone, env)
        retrained = trained_candidates(log)
        print(f"  {changed:.1f} s, peak {changed_peak:.0f} MiB, trained {retrained}", flush=True)

        reference = Path(scratch) / "reference"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(reference)], check=True)
        change_one_candidate(reference)
        print("cold dvc repro of the same change in a second clone, to compare metrics …")
        timed(["dvc", "repro"], reference, env)
        same_metrics = metrics_of(clone) == metrics_of(reference)
        print(f"  metrics identical: {same_metrics}", flush=True)
    results = {
        "cold_seconds": round(cold, 1),
        "cold_peak_mib": round(cold_peak),
        "one_candidate_changed_seconds": round(changed, 1),
        "one_candidate_changed_trained": retrained,
        "one_candidate_changed_metrics_equal_cold": same_metrics,
        "noop_seconds": round(noop, 2),
        "noop_to_cold_ratio": round(noop / cold, 4),
        "changed_to_cold_ratio": round(changed / cold, 3),
        "targets": TARGETS,
        "met": {
            "cold_seconds": cold <= TARGETS["cold_seconds"],
            "one_candidate_changed_seconds": changed <= TARGETS["one_candidate_changed_seconds"]
            and retrained == [CHANGED_CANDIDATE]
            and same_metrics,
            "noop_seconds": noop <= TARGETS["noop_seconds"],
        },
        "cpu_count": os.cpu_count(),
    }
    write_json_atomically(ROOT / "bench" / "results" / "pipeline.json", results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
