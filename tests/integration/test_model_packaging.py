"""The logged model is self-contained: its own requirements.txt is enough to load and serve it,
with MLflow's own server, where mlops-lab is not installed; and MLflow's tools get the answers
the service gives, in full."""

import os
import subprocess
import sys

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import requests
import yaml
from calls import post
from mlflow.exceptions import MlflowException
from projects import PROJECT_ROOT, challenge_payload, free_port, wait_until_ok

from mlops_lab.common.tables import read_parquet
from mlops_lab.evaluation.prepared import split_like_notebook
from mlops_lab.kernel.contract import probability_column
from mlops_lab.kernel.listing import MODEL_INPUT_FIELDS, REQUIRED_FIELDS
from mlops_lab.serving.payloads import payloads

pytestmark = pytest.mark.integration

LISTINGS = 200


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
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("VIRTUAL_ENV", "PYTHONPATH") and not key.startswith("MLFLOW_")
    }
    environment["PATH"] = f"{venv / 'bin'}{os.pathsep}{environment['PATH']}"
    # A fresh environment from the model's requirements alone. uv, as make setup uses it: pip
    # installs the same pins in 100 s here, uv from its cache in 14 s.
    uv = str(PROJECT_ROOT / ".uv" / "bin" / "uv")
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    install = subprocess.run(
        [uv, "pip", "install", "--quiet", "--compile-bytecode", "-r", model / "requirements.txt"],
        env={**environment, "VIRTUAL_ENV": str(venv)},
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
    # MLflow's server answers in full: each listing's category and probabilities, as ours does.
    theirs = answer.json()["predictions"]
    assert [row["price_category"] for row in theirs] == [a["price_category"] for a in our_answers]
    for row, our_answer in zip(theirs, our_answers, strict=True):
        expected = {probability_column(c): p for c, p in our_answer["probabilities"].items()}
        assert {name: row[name] for name in expected} == pytest.approx(expected, abs=1e-12)


def test_mlflows_pyfunc_answers_in_full_as_the_service_and_batch_scoring_do(
    trained_lab, local_service, tmp_path
):
    model = mlflow.pyfunc.load_model(str(trained_lab.path / "models" / "price_category"))
    # The README's payload as callers send it: counts as integers.
    challenge = challenge_payload()
    assert isinstance(challenge["accommodates"], int) and isinstance(challenge["bathrooms"], int)
    answer = model.predict(pd.DataFrame([challenge]))
    served = post(local_service, [challenge]).json()["predictions"][0]
    assert answer.to_dict("records") == [
        {
            "price_category": served["price_category"],
            **{probability_column(c): p for c, p in served["probabilities"].items()},
        }
    ]

    # The whole test part, through batch scoring and through MLflow's pyfunc.
    training = yaml.safe_load((trained_lab.path / "config.yaml").read_text())["training"]
    prepared = read_parquet(trained_lab.path / "data" / "prepared" / "listings.parquet")
    split = split_like_notebook(prepared, training["test_size"], training["split_random_state"])
    listings = prepared.loc[split.test_features.index, ["id", *MODEL_INPUT_FIELDS]]
    listings.to_parquet(tmp_path / "test_part.parquet", index=False)
    scoring = ["mlops-lab", "score", str(tmp_path / "test_part.parquet"), "test_scores.parquet"]
    assert trained_lab.run(scoring).returncode == 0
    scores = read_parquet(trained_lab.path / "test_scores.parquet")
    answers = model.predict(listings.reset_index(drop=True))
    assert len(answers) == len(scores) == len(listings)
    assert answers["price_category"].tolist() == scores["price_category"].tolist()
    columns = [column for column in answers.columns if column.startswith("probability_")]
    assert columns == [column for column in scores.columns if column.startswith("probability_")]
    np.testing.assert_allclose(answers[columns], scores[columns], rtol=0, atol=1e-12)

    # A listing outside the API's contract is named, row and field.
    broken = pd.DataFrame([challenge, {**challenge, "bathrooms": 1.25}])
    with pytest.raises(MlflowException, match=r"\[1\]\.bathrooms: Input should be a multiple"):
        model.predict(broken)
