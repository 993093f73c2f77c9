"""Tuning speed-up: one `mlops-lab tune` worker against two sharing the study, same budget.

Both runs get the very same trials (parameter sets drawn once from a seeded sampler and
enqueued in each study), and every worker is limited to one thread, so the ratio measures
sharing the study, not luck in what was tried. The data is the full prepared table.

    python bench/tuning.py [--trials 16]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import yaml
from mlflow import MlflowClient

from mlops_lab.common.files import write_json_atomically
from mlops_lab.config import load_config
from mlops_lab.stages.tune.transform import suggest_params

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def fixed_trials(space, count: int) -> list[dict]:
    """`count` parameter sets from a seeded random sampler: the same for every run."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    drawn = []
    for _ in range(count):
        trial = study.ask()
        drawn.append(suggest_params(trial, space))
        study.tell(trial, 0.0)
    return drawn


def timed_run(workers: int, trials: list[dict], folder: Path) -> float:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["tuning"].update(
        {"trials": len(trials), "embedded_storage_path": str(folder / "optuna.db")}
    )
    config["tuning"]["studies"][next(iter(config["tuning"]["studies"]))].update(
        {"study_name": f"bench-{workers}", "tuned_params_path": str(folder / "tuned.yaml")}
    )
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    storage = f"sqlite:///{folder / 'optuna.db'}"
    study = optuna.create_study(
        study_name=f"bench-{workers}", storage=storage, direction="maximize"
    )
    for params in trials:
        study.enqueue_trial(params)
    environment = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "OMP_NUM_THREADS": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    environment.pop("OPTUNA_STORAGE", None)
    # Create the MLflow store first: two processes creating one SQLite store race.
    MlflowClient(environment["MLFLOW_TRACKING_URI"]).search_experiments()
    started = time.monotonic()
    logs = [folder / f"worker-{number}.log" for number in range(workers)]
    processes = [
        subprocess.Popen(
            [str(BIN / "mlops-lab"), "tune", "--config", str(config_path)],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )
        for log in logs
    ]
    for process, log in zip(processes, logs, strict=True):
        if process.wait() != 0:
            sys.exit(f"a tune worker failed ({workers} workers):\n{log.read_text()[-3000:]}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    arguments = parser.parse_args()
    config = load_config(ROOT / "config.yaml", tuned_params=False)
    if not (ROOT / config.data.prepared_path).is_file():
        sys.exit("no prepared data: run `make run` first")
    trials = fixed_trials(config.tuning.study_for(None)[1].search_space, arguments.trials)
    seconds = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory(prefix="mlops-lab-bench-tuning-") as folder:
            seconds[workers] = round(timed_run(workers, trials, Path(folder)), 1)
            print(f"{workers} worker(s): {seconds[workers]} s for {len(trials)} trials", flush=True)
    results = {
        "trials": len(trials),
        "one_worker_s": seconds[1],
        "two_workers_s": seconds[2],
        "speedup": round(seconds[1] / seconds[2], 2),
    }
    write_json_atomically(ROOT / "bench" / "results" / "tuning.json", results)
    print(results)


if __name__ == "__main__":
    main()
