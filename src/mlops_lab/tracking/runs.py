"""Where runs are tracked, and how one `dvc repro` becomes one MLflow pipeline run."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import psutil
import requests
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlops_lab.common.errors import UserError

log = logging.getLogger(__name__)

TAG_PREFIX = "mlops_lab."
PIPELINE_ID_TAG = TAG_PREFIX + "pipeline_id"
STAGE_TAG = TAG_PREFIX + "stage"
RAW_DATA_TAG = TAG_PREFIX + "raw_data_sha256"
PREPARED_DATA_TAG = TAG_PREFIX + "prepared_data_sha256"
DATA_PREP_RUN_TAG = TAG_PREFIX + "data_prep_run_id"
PIPELINE_STAGE = "pipeline"


class TrackingUnavailable(UserError, RuntimeError):
    """The MLflow tracking server cannot be reached."""


@dataclass(frozen=True)
class Tracking:
    """Where and under which names this pipeline logs."""

    uri: str
    experiment_name: str
    registered_model_name: str
    # Only for the embedded store; a tracking server keeps artifacts where it is configured to.
    artifact_location: str | None


@dataclass(frozen=True)
class Lineage:
    """What every run of one pipeline execution is tagged with."""

    pipeline_id: str
    git_commit: str
    git_dirty: bool
    raw_data_sha256: str

    def tags(self) -> dict[str, str]:
        return {
            PIPELINE_ID_TAG: self.pipeline_id,
            TAG_PREFIX + "git_commit": self.git_commit,
            TAG_PREFIX + "git_dirty": str(self.git_dirty).lower(),
            RAW_DATA_TAG: self.raw_data_sha256,
            "mlflow.source.git.commit": self.git_commit,
        }


def tracking_uri(
    environment: Mapping[str, str], project_root: Path, embedded_store_dir: Path
) -> str:
    """MLFLOW_TRACKING_URI when set, else the embedded SQLite store's URI."""
    uri = environment.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri
    return f"sqlite:///{(project_root / embedded_store_dir).resolve() / 'mlflow.db'}"


def resolve_tracking(
    environment: Mapping[str, str],
    project_root: Path,
    embedded_store_dir: Path,
    experiment_name: str,
    registered_model_name: str,
) -> Tracking:
    """MLFLOW_TRACKING_URI when set, else an embedded SQLite store with local artifacts."""
    uri = tracking_uri(environment, project_root, embedded_store_dir)
    if environment.get("MLFLOW_TRACKING_URI", "").strip():
        return Tracking(uri, experiment_name, registered_model_name, artifact_location=None)
    store = (project_root / embedded_store_dir).resolve()
    store.mkdir(parents=True, exist_ok=True)
    return Tracking(
        uri=uri,
        experiment_name=experiment_name,
        registered_model_name=registered_model_name,
        artifact_location=(store / "artifacts").as_uri(),
    )


def check_reachable(uri: str, timeout_seconds: float = 5.0) -> None:
    """Raise TrackingUnavailable, naming the URI, when an HTTP tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        response = requests.get(f"{uri.rstrip('/')}/health", timeout=timeout_seconds)
    except requests.RequestException as error:
        raise TrackingUnavailable(
            f"MLflow tracking server at {uri} is not reachable ({type(error).__name__}). "
            "Start it (docker compose up -d mlflow) or unset MLFLOW_TRACKING_URI to use the "
            "embedded store."
        ) from error
    if response.status_code != 200:
        raise TrackingUnavailable(
            f"MLflow tracking server at {uri} answered {response.status_code} to /health: "
            f"{response.text[:200]!r}"
        )


def pipeline_id(environment: Mapping[str, str]) -> str:
    """One id shared by the stages of one `dvc repro`: MLOPS_LAB_PIPELINE_ID, else dvc's process."""
    explicit = environment.get("MLOPS_LAB_PIPELINE_ID", "").strip()
    if explicit:
        return explicit
    for ancestor in psutil.Process().parents():
        try:
            command = " ".join(ancestor.cmdline())
            started = ancestor.create_time()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "dvc" in command and (" repro" in command or " exp run" in command):
            return hashlib.sha256(f"{ancestor.pid}:{started}".encode()).hexdigest()[:16]
    # Run outside dvc: this stage is a pipeline of its own.
    return uuid.uuid4().hex[:16]


def git_state(project_root: Path, pipeline_outputs: list[Path]) -> tuple[str, bool]:
    """The commit, and whether code or config differ from it (the pipeline's own outputs aside)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=project_root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                *(f":(exclude){path}" for path in pipeline_outputs),
            ],
            cwd=project_root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        log.warning("git state unknown (%s): runs are tagged git_commit=unknown", error)
        return "unknown", True
    return commit, bool(status.strip())


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def experiment_id_made_if_needed(client: MlflowClient, tracking: Tracking) -> str:
    """The experiment's id, made first if there is none."""
    experiment = client.get_experiment_by_name(tracking.experiment_name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(
            tracking.experiment_name, artifact_location=tracking.artifact_location
        )
    except MlflowException as error:
        # Another pipeline made it between the lookup and now (two started at once).
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(tracking.experiment_name).experiment_id


def use_tracking(tracking: Tracking) -> str:
    """Point MLflow at the tracking store and return the experiment id, creating it if needed."""
    check_reachable(tracking.uri)
    mlflow.set_tracking_uri(tracking.uri)
    mlflow.set_registry_uri(tracking.uri)
    experiment_id = experiment_id_made_if_needed(MlflowClient(), tracking)
    # Runs started without an explicit experiment (candidates, nested runs) belong here too.
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _pipeline_run(client: MlflowClient, experiment_id: str, lineage: Lineage) -> str:
    """The id of this pipeline's parent run, created by the first stage that runs."""
    found = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`{PIPELINE_ID_TAG}` = '{lineage.pipeline_id}' "
            f"and tags.`{STAGE_TAG}` = '{PIPELINE_STAGE}'"
        ),
        max_results=1,
    )
    if found:
        return found[0].info.run_id
    run = client.create_run(
        experiment_id,
        run_name=f"pipeline-{lineage.pipeline_id[:8]}",
        tags={**lineage.tags(), STAGE_TAG: PIPELINE_STAGE},
    )
    return run.info.run_id


@contextmanager
def stage_run(
    tracking: Tracking, lineage: Lineage, stage: str, tags: Mapping[str, str] | None = None
) -> Iterator[Run]:
    """An MLflow run for one stage, nested in its pipeline's run; both marked failed on error."""
    experiment_id = use_tracking(tracking)
    parent_id = _pipeline_run(MlflowClient(), experiment_id, lineage)
    with (
        mlflow.start_run(run_id=parent_id),
        mlflow.start_run(
            experiment_id=experiment_id,
            run_name=stage,
            nested=True,
            tags={**lineage.tags(), STAGE_TAG: stage, **(tags or {})},
        ) as run,
    ):
        log.info(
            "MLflow run %s (%s) in pipeline run %s at %s",
            run.info.run_id,
            stage,
            parent_id,
            tracking.uri,
        )
        try:
            yield run
        except (SystemExit, KeyboardInterrupt):
            end_stopped_runs(experiment_id, run.info.run_id)
            raise


def end_stopped_runs(experiment_id: str, stage_run_id: str) -> None:
    """Mark FAILED every run a stopped stage left open. A stop raises wherever it lands, even
    inside MLflow's own start or end of a run, after which a run may be RUNNING in the store
    without being on MLflow's stack of active runs, or the stack may end the wrong run."""
    client = MlflowClient()
    for child in client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`mlflow.parentRunId` = '{stage_run_id}' and attributes.status = 'RUNNING'"
        ),
    ):
        client.set_terminated(child.info.run_id, "FAILED")
    while mlflow.active_run() is not None:
        mlflow.end_run("FAILED")


def find_data_prep_run(experiment_id: str, prepared_data_sha256: str) -> str | None:
    """The latest data_prep run that wrote these exact prepared bytes, if any."""
    found = MlflowClient().search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`{STAGE_TAG}` = 'data_prep' "
            f"and tags.`{PREPARED_DATA_TAG}` = '{prepared_data_sha256}'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return found[0].info.run_id if found else None
