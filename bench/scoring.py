"""Batch scoring's speed: `mlops-lab score` against the peer a user would reach for, MLflow's
own `mlflow.pyfunc` model on the same registered files, in the same run.

Both score the shipped raw file's listings with the repository's champion
(models/price_category, or --model), in this process, after loading once:
- ours: every row checked against the API's schema, then answered through the service's path
  (categories and all four probabilities), in config.yaml's chunks;
- the peer: `mlflow.pyfunc.load_model(...).predict(frame)` on the same listings as a frame,
  which checks them against the same contract and answers in full too (kernel/pyfunc.py),
  through scikit-learn instead of the compiled path.
Then the command itself, end to end (start, read, load, score, write), in a subprocess; and
the same listings as the API's fields in Parquet, --copies times over (a data lake's batch is
larger than one city's file; 8 by default), through `mlops-lab score` three ways: in its
own process, on Spark in local mode (one thread per core) and on a standalone Spark cluster of
two one-core workers on this machine (tests/spark_cluster.py), each job's listings/s (from the
command's own "wrote … in N s" line) with the start-up (the rest of the command's wall time,
and the cluster's own start) apart. Results go to bench/results/scoring.json.

    python bench/scoring.py [--model models/price_category] [--copies 8]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import pandas as pd

from mlops_lab.commands.score.transform import api_fields_of_scrape, validate_rows
from mlops_lab.common.files import write_json_atomically
from mlops_lab.common.tables import read_parquet
from mlops_lab.config import load_config
from mlops_lab.kernel.inside_airbnb import read_raw_listings
from mlops_lab.serving.loading import load_served_model
from mlops_lab.serving.payloads import payloads

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from spark_cluster import SparkCluster  # noqa: E402

REPEATS = 3
# The job's own time, from the command's last "wrote … in N s (… listings/s)" line.
JOB_SECONDS = re.compile(r"wrote \d+ scores .* in ([0-9.]+) s \(")


def best_of(repeats: int, work) -> float:
    """The fastest of `repeats` timings of `work()`, in seconds."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


def engine_run(command: list[str], listings: int, environment: dict[str, str]) -> dict:
    """One `mlops-lab score` run: its job's listings/s and the start-up apart, in seconds."""
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    job = float(JOB_SECONDS.findall(result.stderr)[-1])
    return {
        "listings_per_second": round(listings / job),
        "job_seconds": round(job, 1),
        "startup_seconds": round(wall - job, 1),
    }


def engines(fields, model_dir: Path, scratch: Path) -> dict:
    """`mlops-lab score` on the listings as a Parquet of the API's fields: in its process, on
    Spark in local mode, on a two-worker Spark cluster."""
    listings = scratch / "listings.parquet"
    fields.to_parquet(listings, index=False)
    command = [str(Path(sys.executable).with_name("mlops-lab")), "score", "--model-uri"]
    command += [str(model_dir), str(listings)]
    environment = {key: value for key, value in os.environ.items() if key[:7] != "MLFLOW_"}
    environment["SPARK_LOCAL_IP"] = "127.0.0.1"
    spark = ["--engine", "spark", "--master"]
    results = {
        "python": engine_run([*command, str(scratch / "a.parquet")], len(fields), environment),
        "spark_local": engine_run(
            [*command, str(scratch / "b.parquet"), *spark, "local[*]"], len(fields), environment
        ),
    }
    started = time.perf_counter()
    with SparkCluster(scratch / "spark", workers=2) as cluster:
        cluster_start = time.perf_counter() - started
        cluster_run = [*command, str(scratch / "c.parquet"), *spark, cluster.url]
        results["spark_cluster_2_workers"] = engine_run(cluster_run, len(fields), environment)
    results["spark_cluster_2_workers"]["cluster_start_seconds"] = round(cluster_start, 1)
    return results


def main() -> None:
    os.chdir(ROOT)
    config = load_config(ROOT / "config.yaml", tuned_params=False)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / config.promotion.champion_dir)
    parser.add_argument("--copies", type=int, default=8)
    arguments = parser.parse_args()
    model_dir = arguments.model.resolve()
    categories = config.data_prep.price_categories
    fields = api_fields_of_scrape(read_raw_listings(ROOT / config.data.raw_path))
    rows = payloads(fields)
    listings = len(rows)
    chunk = config.scoring.chunk_size
    served = load_served_model(str(model_dir), categories, parallel=True)
    locations = [str(position) for position in range(listings)]

    def ours() -> None:
        for first in range(0, listings, chunk):
            valid, _, _ = validate_rows(
                rows[first : first + chunk], locations[first : first + chunk]
            )
            served.predict(valid)

    peer = mlflow.pyfunc.load_model(str(model_dir))
    frame = fields.drop(columns=["id"])

    def pyfunc() -> None:
        peer.predict(frame)

    print(f"{listings} listings, best of {REPEATS} …", flush=True)
    ours_seconds = best_of(REPEATS, ours)
    pyfunc_seconds = best_of(REPEATS, pyfunc)
    with tempfile.TemporaryDirectory(prefix="mlops-lab-bench-scoring-") as scratch:
        output = Path(scratch) / "scores.parquet"
        started = time.perf_counter()
        subprocess.run(
            [
                str(Path(sys.executable).with_name("mlops-lab")),
                "score",
                str(config.data.raw_path),
                str(output),
                "--model-uri",
                str(model_dir),
            ],
            check=True,
            capture_output=True,
            env={key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")},
        )
        command_seconds = time.perf_counter() - started
        assert len(read_parquet(output)) == listings
        print("the three engines on the listings as a Parquet of the API's fields …", flush=True)
        by_engine = engines(pd.concat([fields] * arguments.copies), model_dir, Path(scratch))
    results = {
        "listings": listings,
        "cpu_count": os.cpu_count(),
        "ours_listings_per_second": round(listings / ours_seconds),
        "pyfunc_predict_listings_per_second": round(listings / pyfunc_seconds),
        "ours_to_pyfunc_ratio": round(pyfunc_seconds / ours_seconds, 2),
        "command_end_to_end_seconds": round(command_seconds, 1),
        "engines_listings": len(fields) * arguments.copies,
        "engines": by_engine,
    }
    for name, value in results.items():
        print(f"  {name}: {value}")
    write_json_atomically(ROOT / "bench" / "results" / "scoring.json", results)


if __name__ == "__main__":
    main()
