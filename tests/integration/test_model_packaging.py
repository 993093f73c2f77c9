"""The logged model is self-contained: its own requirements.txt is enough to load and serve it,
with MLflow's own server, where mlops-lab is not installed."""

import os
import subprocess
import sys

import pytest
import requests
from projects import challenge_payload, free_port, wait_until_ok

pytestmark = pytest.mark.integration

CHALLENGE = challenge_payload()


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
            json={"dataframe_records": [CHALLENGE]},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        ours = requests.post(f"{local_service.url}/predict", json=CHALLENGE, timeout=30)
        assert answer.json()["predictions"] == [ours.json()["price_category"]]
    finally:
        server.terminate()
        server.wait(timeout=30)
