"""Real services for the integration tier: a throwaway PostgreSQL and an `mlflow server` on it."""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from projects import VENV_BIN, LabProject, free_port, routed_run, small_run, wait_until_ok
from services import PostgresCluster, Service, ready_service

DATABASE_USER = "mlflow"
STORE_KINDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_uri() -> Iterator[str]:
    """A fresh PostgreSQL cluster with an `mlflow` database and user (and `optuna`)."""
    cluster = PostgresCluster()
    try:
        uri = cluster.database("mlflow", DATABASE_USER)
        # Optuna's tables are its own database's: both use alembic_version.
        cluster.sql(f"CREATE DATABASE optuna OWNER {DATABASE_USER}")
        yield uri
    finally:
        cluster.remove()


def start_mlflow_server(postgres_uri: str, artifacts: Path, log_path: Path) -> tuple[str, Any]:
    """A real `mlflow server` on the PostgreSQL store and artifact folder given, once healthy."""
    port = free_port()
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
    try:
        wait_until_ok(f"{uri}/health", process, log_path, "mlflow server")
    except BaseException:
        process.terminate()
        raise
    return uri, process


@pytest.fixture(scope="session")
def mlflow_server(postgres_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A real `mlflow server` on PostgreSQL, serving artifacts itself from a local folder."""
    home = tmp_path_factory.mktemp("mlflow-server")
    artifacts = home / "artifacts"
    log_path = home / "server.log"
    uri, process = start_mlflow_server(postgres_uri, artifacts, log_path)
    try:
        yield {"uri": uri, "artifacts": artifacts, "log": log_path}
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture()
def second_mlflow_server(postgres_uri: str, mlflow_server: dict, tmp_path: Path) -> Iterator[dict]:
    """Another `mlflow server` on the same store, which a test may stop as an outage."""
    uri, process = start_mlflow_server(
        postgres_uri, mlflow_server["artifacts"], tmp_path / "second-server.log"
    )
    try:
        yield {"uri": uri, "process": process}
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture(scope="session")
def store_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster for prediction logs alone, that a test may stop and start."""
    cluster = PostgresCluster()
    try:
        yield cluster
    finally:
        cluster.remove()


def empty_store(kind: str, cluster: PostgresCluster, folder: Path, name: str) -> dict:
    """An empty store of a kind users run: a SQLite file, or a PostgreSQL database of its own.
    Its `kind` and SQLAlchemy `uri`."""
    if kind == "sqlite":
        return {"kind": kind, "uri": f"sqlite:///{folder / 'predictions.db'}"}
    # Named after the test, for whoever reads the cluster's log; unique whatever the test.
    name = re.sub(r"\W", "_", name).lower()[-30:] + secrets.token_hex(4)
    return {"kind": kind, "uri": cluster.database(f"p_{name}", f"u_{name}")}


@pytest.fixture(params=STORE_KINDS)
def prediction_store(request, store_cluster: PostgresCluster, tmp_path: Path) -> dict:
    """An empty store of each kind, for one test."""
    return empty_store(request.param, store_cluster, tmp_path, request.node.name)


@pytest.fixture(scope="module", params=STORE_KINDS)
def module_prediction_store(
    request, store_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> dict:
    """An empty store of each kind, for the tests of one module."""
    folder = tmp_path_factory.mktemp("store")
    return empty_store(request.param, store_cluster, folder, request.module.__name__)


@pytest.fixture()
def small_project(tmp_path: Path) -> LabProject:
    project = LabProject(tmp_path / "lab")
    project.edit_config(small_run)
    project.commit("small run")
    return project


@pytest.fixture(scope="session")
def trained_lab(tmp_path_factory: pytest.TempPathFactory, mlflow_server: dict) -> LabProject:
    """A small lab whose pipeline ran against the mlflow server: its champion, a field router
    as on the full data, is served by the service tests."""
    project = LabProject(tmp_path_factory.mktemp("trained") / "lab")
    project.edit_config(routed_run)
    project.commit("small run with a router")

    def own_model_name(config: dict) -> None:
        config["tracking"]["registered_model_name"] = "served-price-category"

    project.edit_config(own_model_name)
    project.commit("own registered model name")
    result = project.run(["dvc", "repro"], {"MLFLOW_TRACKING_URI": mlflow_server["uri"]})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "routed_boosting registered" in result.stdout, result.stdout
    return project


@pytest.fixture(scope="session")
def local_service(trained_lab: LabProject, tmp_path_factory: pytest.TempPathFactory):
    """The service on the local model directory only: no tracking server involved."""
    with ready_service(
        {"MODEL_URI": str(trained_lab.path / "models" / "price_category")},
        tmp_path_factory.mktemp("service") / "service.log",
    ) as service:
        yield service


@pytest.fixture()
def service_factory(tmp_path: Path):
    """Start services with given settings; all are stopped when the test ends."""
    started: list[Service] = []

    def start(environment: dict[str, str]) -> Service:
        service = Service(environment, tmp_path / f"service-{len(started)}.log")
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
