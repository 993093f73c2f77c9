"""A user's copy of the lab, and the small settings that run its pipeline in a minute."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml
from mlflow import MlflowClient
from waiting import poll_until

PROJECT_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def wait_until_ok(
    url: str, process: subprocess.Popen, log_path: Path, what: str, seconds: float = 120
) -> requests.Response:
    """The first 200 answer of `url` from a server `process` started; fail, showing its log, if
    it exits or does not answer in time."""

    def answer() -> requests.Response | None:
        if process.poll() is not None:
            pytest.fail(f"{what} exited {process.returncode}: {log_path.read_text()[-3000:]}")
        try:
            response = requests.get(url, timeout=2)
        except requests.RequestException:
            return None
        return response if response.status_code == 200 else None

    return poll_until(
        answer, seconds, f"{what} to answer {url}", lambda: log_path.read_text()[-3000:]
    )


def challenge_payload() -> dict:
    """The challenge's payload, as config.yaml defines it: what every caller sends."""
    config = yaml.safe_load((PROJECT_ROOT / "config.yaml").read_text())
    return dict(config["prediction_app"]["challenge_payload"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LabProject:
    """A user's clone of the lab in a temporary folder, and the commands they would run in it."""

    def __init__(self, path: Path):
        self.path = path
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            check=True,
        ).stdout.split(b"\0")
        for name in filter(None, listed):
            source = PROJECT_ROOT / name.decode()
            if source.is_file():
                target = path / name.decode()
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=path, check=True)
        self.commit("copy of the project")

    def commit(self, message: str) -> None:
        for command in (
            ["git", "add", "-A"],
            ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", message],
        ):
            subprocess.run(command, cwd=self.path, check=True, capture_output=True)

    def edit_config(self, change) -> None:
        path = self.path / "config.yaml"
        config = yaml.safe_load(path.read_text())
        change(config)
        path.write_text(yaml.safe_dump(config, sort_keys=False))

    def environment(self, settings: dict[str, str] | None = None) -> dict[str, str]:
        """This process's environment with the lab's on PATH and only the given settings."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
        env.pop("MLOPS_LAB_PIPELINE_ID", None)
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"
        env.update(settings or {})
        return env

    def run(self, command: list[str], settings: dict[str, str] | None = None):
        """Run a command here with the lab's environment on PATH and only the given settings."""
        return subprocess.run(
            command, cwd=self.path, env=self.environment(settings), capture_output=True, text=True
        )

    def embedded_client(self) -> MlflowClient:
        """A client of the project's embedded tracking store and registry (MLflow on SQLite)."""
        store = f"sqlite:///{self.path / 'mlruns' / 'mlflow.db'}"
        return MlflowClient(tracking_uri=store, registry_uri=store)


def small_run(config: dict) -> None:
    """A few thousand listings and light models: the whole pipeline in well under a minute."""
    config["data_prep"]["sample_rows"] = 3000
    training = config["training"]
    for candidate in training["candidates"].values():
        # A soft vote takes its members' (now small) parameters.
        if candidate["estimator"] == "random_forest":
            candidate["params"]["n_estimators"] = 30
        elif candidate["estimator"] == "hist_gradient_boosting":
            candidate["params"]["max_iter"] = 60
    config["explainability"].update(
        {"shap_sample_size": 30, "shap_background_size": 10, "shap_permutations": 1}
    )


def make_worse(config: dict) -> None:
    """One shallow, one-feature forest: clearly worse than a small run's champion."""
    training = config["training"]
    training["candidates"] = {
        "stump_forest": {
            "estimator": "random_forest",
            "features": ["accommodates"],
            "params": {"n_estimators": 2, "max_depth": 1, "random_state": 1},
        }
    }
    training["reference_candidate"] = "stump_forest"


def routed_run(config: dict) -> None:
    """A small run whose candidates make a field router the winner, as on the full data: a
    boosting on every field, one on the required fields only, and the router between them.
    On fewer listings the optional fields barely matter and the router does not win."""
    small_run(config)
    config["data_prep"]["sample_rows"] = 8000
    training = config["training"]
    kept = (
        "notebook_random_forest",
        "tuned_gradient_boosting",
        "required_fields_gradient_boosting",
    )
    training["candidates"] = {name: training["candidates"][name] for name in kept}
    training["candidates"]["routed_boosting"] = {
        "estimator": "field_router",
        "members": ["tuned_gradient_boosting", "required_fields_gradient_boosting"],
    }


def tiny_run(config: dict) -> None:
    """A small run of two candidates: enough for what happens around training."""
    small_run(config)
    training = config["training"]
    kept = (training["reference_candidate"], "gradient_boosting")
    training["candidates"] = {name: training["candidates"][name] for name in kept}
