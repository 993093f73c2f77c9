"""The logged model is self-contained: its own requirements.txt is enough to load and serve it,
with MLflow's own server, where mlops-lab is not installed."""

import json
import os
import subprocess
import sys

import pytest
import requests
from calls import post
from projects import free_port, wait_until_ok

from mlops_lab.common.tables import read_parquet
from mlops_lab.kernel.listing import MODEL_INPUT_FIELDS, REQUIRED_FIELDS
from mlops_lab.serving.payloads import payloads

pytestmark = pytest.mark.integration

LISTINGS = 200
# In the model's own environment: the probabilities of the listings of a request body, for the
# very frame `mlflow models serve` makes of it (parsed by the model's input schema).
PROBABILITIES = """
import json, sys
import mlflow.pyfunc, mlflow.sklearn
from mlflow.pyfunc.scoring_server import infer_and_parse_data

model_dir, body_path, out_path = sys.argv[1:]
schema = mlflow.pyfunc.load_model(model_dir).metadata.get_input_schema()
with open(body_path) as body:
    frame = infer_and_parse_data(json.load(body), schema)
model = mlflow.sklearn.load_model(model_dir)
rows = model.predict_proba(frame).tolist()
with open(out_path, "w") as out:
    json.dump([dict(zip(map(str, model.classes_), row)) for row in rows], out)
"""


def listings_from_the_data(lab) -> list[dict]:
    """200 prepared listings as callers send them: every other one with the required fields
    only, so both of a router's members answer."""
    prepared = read_parquet(lab.path / "data/prepared/listings.parquet")
    sample = payloads(prepared.sample(LISTINGS, random_state=5)[["id", *MODEL_INPUT_FIELDS]])
    required = ("id", *REQUIRED_FIELDS)
    return [
        listing if n % 2 else {key: value for key, value in listing.items() if key in required}
        for n, listing in enumerate(sample)
    ]


def test_mlflow_serves_the_champion_from_its_own_requirements(trained_lab, local_service, tmp_path):
    model = trained_lab.path / "models" / "price_category"
    assert "mlops-lab" not in (model / "requirements.txt").read_text()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("VIRTUAL_ENV", "PYTHONPATH") and not key.startswith("MLFLOW_")
    }
    environment["PATH"] = f"{venv / 'bin'}{os.pathsep}{environment['PATH']}"
    install = subprocess.run(
        [
            venv / "bin" / "python",
            "-m",
            "pip",
            "install",
            "--quiet",
            "-r",
            model / "requirements.txt",
        ],
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    # Run from an empty folder: nothing of this repository is importable there.
    probe = subprocess.run(
        [venv / "bin" / "python", "-c", "import mlops_lab"], cwd=tmp_path, env=environment
    )
    assert probe.returncode != 0

    listings = listings_from_the_data(trained_lab)
    ours = post(local_service, listings)
    assert ours.status_code == 200, ours.text
    our_answers = ours.json()["predictions"]
    assert [answer["id"] for answer in our_answers] == [listing["id"] for listing in listings]

    port = free_port()
    log_path = tmp_path / "mlflow-serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [
                venv / "bin" / "mlflow",
                "models",
                "serve",
                "-m",
                model,
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=tmp_path,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_ok(f"http://127.0.0.1:{port}/ping", server, log_path, "mlflow models serve", 180)
        answer = requests.post(
            f"http://127.0.0.1:{port}/invocations",
            json={"dataframe_records": listings},
            timeout=120,
        )
        assert answer.status_code == 200, answer.text
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert answer.json()["predictions"] == [a["price_category"] for a in our_answers]

    # `mlflow models serve` answers labels only: the probabilities come from the same package,
    # loaded in the same environment, for the same frame.
    body_path, out_path = tmp_path / "body.json", tmp_path / "probabilities.json"
    body_path.write_text(json.dumps({"dataframe_records": listings}))
    computed = subprocess.run(
        [venv / "bin" / "python", "-c", PROBABILITIES, model, body_path, out_path],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert computed.returncode == 0, computed.stderr[-3000:]
    theirs = json.loads(out_path.read_text())
    assert len(theirs) == len(our_answers)
    for listing, their_row, our_answer in zip(listings, theirs, our_answers, strict=True):
        # Ours are rounded to 6 decimals.
        assert their_row == pytest.approx(our_answer["probabilities"], abs=1e-6), listing
