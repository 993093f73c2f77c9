"""Batch scoring's speed: `mlops-lab score` against the peer a user would reach for, MLflow's
own `mlflow.pyfunc` model on the same registered files, in the same run.

Both score the shipped raw file's listings with the repository's champion
(models/price_category, or --model), in this process, after loading once:
- ours: every row checked against the API's schema, then answered through the service's path
  (categories and all four probabilities), in config.yaml's chunks;
- the peer: `mlflow.pyfunc.load_model(...).predict(frame)` on the same listings as a frame,
  which checks them against the same contract and answers in full too (kernel/pyfunc.py),
  through scikit-learn instead of the compiled path.
Then the command itself, end to end (start, read, load, score, write), in a subprocess.
Results go to bench/results/scoring.json.

    python bench/scoring.py [--model models/price_category]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow

from mlops_lab.commands.score.transform import api_fields_of_scrape, validate_rows
from mlops_lab.common.files import write_json_atomically
from mlops_lab.common.tables import read_parquet
from mlops_lab.config import load_config
from mlops_lab.kernel.inside_airbnb import read_raw_listings
from mlops_lab.serving.loading import load_served_model
from mlops_lab.serving.payloads import payloads

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 3


def best_of(repeats: int, work) -> float:
    """The fastest of `repeats` timings of `work()`, in seconds."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    os.chdir(ROOT)
    config = load_config(ROOT / "config.yaml", tuned_params=False)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / config.promotion.champion_dir)
    model_dir = parser.parse_args().model.resolve()
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
    results = {
        "listings": listings,
        "cpu_count": os.cpu_count(),
        "ours_listings_per_second": round(listings / ours_seconds),
        "pyfunc_predict_listings_per_second": round(listings / pyfunc_seconds),
        "ours_to_pyfunc_ratio": round(pyfunc_seconds / ours_seconds, 2),
        "command_end_to_end_seconds": round(command_seconds, 1),
    }
    for name, value in results.items():
        print(f"  {name}: {value}")
    write_json_atomically(ROOT / "bench" / "results" / "scoring.json", results)


if __name__ == "__main__":
    main()
