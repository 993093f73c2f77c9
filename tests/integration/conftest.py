"""Real services for the integration tier: a throwaway PostgreSQL and an `mlflow server` on it."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DATABASE_USER = "mlflow"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.fail(
            "PostgreSQL server binaries not found under /usr/lib/postgresql: "
            "apt-get install postgresql (.ci/run does this)"
        )
    return found[-1].parent


def as_postgres(command: list[str]) -> list[str]:
    """Postgres refuses to run as root: run its tools as the postgres user when we are root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="session")
def postgres_uri() -> Iterator[str]:
    """A fresh PostgreSQL cluster on loopback with an `mlflow` database and user."""
    binaries = postgres_bin()
    home = Path(tempfile.mkdtemp(prefix="mlops-lab-pg-"))
    data = home / "data"
    password_file = home / "password"
    # Made up per run, so no password is ever written into the repository.
    database_password = secrets.token_hex(16)
    password_file.write_text(secrets.token_hex(16) + "\n")
    home.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
        shutil.chown(password_file, "postgres", "postgres")
    port = free_port()
    subprocess.run(
        as_postgres(
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={password_file}",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        as_postgres(
            [
                str(binaries / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(home / "log"),
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        for statement in (
            f"CREATE ROLE {DATABASE_USER} LOGIN PASSWORD '{database_password}'",
            f"CREATE DATABASE mlflow OWNER {DATABASE_USER}",
            # Optuna's tables are its own database's: both use alembic_version.
            f"CREATE DATABASE optuna OWNER {DATABASE_USER}",
        ):
            subprocess.run(
                as_postgres(
                    [
                        str(binaries / "psql"),
                        "-h",
                        str(home),
                        "-p",
                        str(port),
                        "-U",
                        "postgres",
                        "-v",
                        "ON_ERROR_STOP=1",
                        "-c",
                        statement,
                    ]
                ),
                check=True,
                capture_output=True,
            )
        yield (f"postgresql+psycopg2://{DATABASE_USER}:{database_password}@127.0.0.1:{port}/mlflow")
    finally:
        subprocess.run(
            as_postgres([str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_server(postgres_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A real `mlflow server` on PostgreSQL, serving artifacts itself from a local folder."""
    home = tmp_path_factory.mktemp("mlflow-server")
    artifacts = home / "artifacts"
    port = free_port()
    log_path = home / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                str(VENV_BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                postgres_uri,
                "--artifacts-destination",
                str(artifacts),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"mlflow server exited {process.returncode}: {log_path.read_text()}")
            try:
                if requests.get(f"{uri}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy in 120 s: {log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"uri": uri, "artifacts": artifacts, "log": log_path}
    finally:
        process.terminate()
        process.wait(timeout=30)


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

    def run(self, command: list[str], environment: dict[str, str] | None = None):
        """Run a command here with the lab's environment on PATH and only the given settings."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
        env.pop("MLOPS_LAB_PIPELINE_ID", None)
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"
        env.update(environment or {})
        return subprocess.run(command, cwd=self.path, env=env, capture_output=True, text=True)


def small_run(config: dict) -> None:
    """A few thousand listings and light models: the whole pipeline in well under a minute."""
    config["data_prep"]["sample_rows"] = 3000
    training = config["training"]
    training["cv_folds"] = 3
    for candidate in training["candidates"]:
        # A soft vote takes its members' (now small) parameters.
        if candidate["estimator"] == "random_forest":
            candidate["params"]["n_estimators"] = 30
        elif candidate["estimator"] == "hist_gradient_boosting":
            candidate["params"]["max_iter"] = 60
    config["explainability"].update(
        {"shap_sample_size": 30, "shap_background_size": 10, "shap_permutations": 1}
    )


@pytest.fixture()
def small_project(tmp_path: Path) -> LabProject:
    project = LabProject(tmp_path / "lab")
    project.edit_config(small_run)
    project.commit("small run")
    return project


@pytest.fixture(scope="session")
def trained_lab(tmp_path_factory: pytest.TempPathFactory, mlflow_server: dict) -> LabProject:
    """A small lab whose pipeline ran against the mlflow server: a local model and a champion."""
    project = LabProject(tmp_path_factory.mktemp("trained") / "lab")
    project.edit_config(small_run)
    project.commit("small run")

    def own_model_name(config: dict) -> None:
        config["tracking"]["registered_model_name"] = "served-price-category"
        config["prediction_app"]["model_uri"] = "models:/served-price-category@champion"

    project.edit_config(own_model_name)
    project.commit("own registered model name")
    result = project.run(["dvc", "repro"], {"MLFLOW_TRACKING_URI": mlflow_server["uri"]})
    assert result.returncode == 0, result.stdout + result.stderr
    return project


class Service:
    """The prediction service under gunicorn, as `make serve` runs it."""

    def __init__(self, environment: dict[str, str], log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
        env.update({"HOST": "127.0.0.1", "PORT": str(self.port), "WEB_CONCURRENCY": "2"})
        env.update(environment)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.log_path = log_path
        with log_path.open("w") as log:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "mlops-lab"), "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, seconds: float = 120) -> dict:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"gunicorn exited {self.process.returncode}: {self.log_path.read_text()}"
                )
            try:
                response = requests.get(f"{self.url}/ready", timeout=2)
                if response.status_code == 200:
                    return response.json()
            except requests.RequestException:
                pass
            time.sleep(0.3)
        pytest.fail(f"service not ready in {seconds} s: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)


@pytest.fixture(scope="session")
def local_service(trained_lab: LabProject, tmp_path_factory: pytest.TempPathFactory):
    """The service on the local model directory only: no tracking server involved."""
    service = Service(
        {"MODEL_URI": str(trained_lab.path / "models" / "price_category")},
        tmp_path_factory.mktemp("service") / "gunicorn.log",
    )
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


@pytest.fixture()
def service_factory(tmp_path: Path):
    """Start services with given settings; all are stopped when the test ends."""
    started: list[Service] = []

    def start(environment: dict[str, str]) -> Service:
        service = Service(environment, tmp_path / f"gunicorn-{len(started)}.log")
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
