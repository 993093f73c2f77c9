"""`mlops-lab loop`: one turn of the loop. Monitor the served model; on an alert, harvest the
labelled traffic; when it holds something new, retrain as a DVC experiment outside the working
tree, whose promote stage's gate judges the model; end with one JSON decision, printed, logged
to MLflow and posted to loop.notify_url."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import requests

from mlops_lab.commands.harvest import task as harvest
from mlops_lab.commands.monitor import task as monitor
from mlops_lab.commands.monitor.transform import TooFewPredictions
from mlops_lab.common.errors import UserError
from mlops_lab.config import LabConfig
from mlops_lab.loop.transform import (
    FAILED,
    NO_ALERT,
    NOTHING_NEW,
    TOO_LITTLE_TRAFFIC,
    decision_document,
    decision_metrics,
    experiment_name,
    judged_scores,
    promotion_decision,
    tail_text,
)
from mlops_lab.tracking.runs import (
    PIPELINE_ID_TAG,
    STAGE_TAG,
    TAG_PREFIX,
    resolve_tracking,
    tracking_uri,
    use_tracking,
)

log = logging.getLogger(__name__)

DECISION_TAG = TAG_PREFIX + "decision"
# What the promote stage's scores measure, as it tags its run.
MEASURE_TAG = TAG_PREFIX + "measure"


class LoopError(UserError, RuntimeError):
    """A step of the loop failed: the decision says which and why."""


@dataclass(frozen=True)
class Turn:
    """One turn of the loop: its id (the pipeline id of its retraining), when it began, and
    the settings every step reads."""

    config: LabConfig
    environment: Mapping[str, str]
    loop_id: str
    started: datetime

    @property
    def experiment(self) -> str:
        return experiment_name(self.started)


def monitored(turn: Turn) -> tuple[dict[str, Any] | None, str]:
    """What monitor found ({alerts, model, window}), or None with why it could not judge."""
    try:
        summary = monitor.run(turn.config, turn.environment, monitor.MonitorOptions())
    except TooFewPredictions as error:
        return None, str(error)
    found = {
        "alerts": summary["alerts"],
        "model": summary["model"],
        "window": summary["window"]["predictions"],
        "report": str(turn.config.monitoring.report_dir / monitor.REPORT_NAME),
    }
    return found, "; ".join(summary["alerts"])


def harvested(turn: Turn) -> tuple[dict[str, Any] | None, str]:
    """What harvest found ({listings, left_out, new}), or None when the log has no feedback."""
    try:
        result = harvest.run(turn.config, turn.environment)
    except harvest.NothingToHarvest as error:
        return None, str(error)
    found = {"listings": result.listings, "left_out": result.dropped, "new": result.new}
    return found, "\n".join(harvest.summary_lines(result))


def stage_harvest(config: LabConfig) -> None:
    """Stage the harvest's DVC file in git: an experiment run outside the working tree takes
    the working tree's changes to files git knows, and a new file only once it is staged."""
    path = config.data.harvested_path
    staged = [f"{path}.dvc", str(path.parent / ".gitignore")]
    result = subprocess.run(["git", "add", "--", *staged], capture_output=True, text=True)
    if result.returncode != 0:
        raise LoopError(f"`git add {' '.join(staged)}` failed: {result.stderr.strip()}")


def retrain(turn: Turn) -> None:
    """Run the pipeline as a DVC experiment in a temporary copy of the project (its progress on
    stderr), tracked where this loop tracks and tagged with its id; LoopError if it fails."""
    store = tracking_uri(turn.environment, Path.cwd(), turn.config.tracking.embedded_store_dir)
    environment = {
        **turn.environment,
        # The copy's relative embedded store would vanish with it: the project's, absolutely.
        "MLFLOW_TRACKING_URI": store,
        "MLOPS_LAB_PIPELINE_ID": turn.loop_id,
    }
    command = ["dvc", "exp", "run", "--temp", "--name", turn.experiment]
    log.info("retraining: %s (its output follows on stderr)", " ".join(command))
    last_lines: deque[str] = deque(maxlen=40)
    with subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stderr.write(line)
            last_lines.append(line)
    if process.returncode != 0:
        raise LoopError(
            f"`{' '.join(command)}` exited {process.returncode}:\n{tail_text(list(last_lines))}"
        )


def promote_run(turn: Turn) -> mlflow.entities.Run | None:
    """The promote stage's run of this turn's retraining, or None if promote did not run."""
    found = mlflow.search_runs(
        experiment_names=[turn.config.tracking.experiment_name],
        filter_string=(
            f"tags.`{PIPELINE_ID_TAG}` = '{turn.loop_id}' and tags.`{STAGE_TAG}` = 'promote'"
        ),
        output_format="list",
    )
    return found[0] if found else None


def judged(turn: Turn) -> tuple[str, str, dict[str, Any]]:
    """The gate's verdict on the retrained model: the decision, why, and the evidence."""
    store = tracking_uri(turn.environment, Path.cwd(), turn.config.tracking.embedded_store_dir)
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    run = promote_run(turn)
    if run is None:
        return NOTHING_NEW, "the harvest left the prepared table as it was: promote did not run", {}
    registration = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/registration.json")
    evidence = {
        "model": {
            "name": registration["model_name"],
            "challenger": registration["challenger"]["version"],
            "champion": registration["champion"]["version"],
            "previous_champion": registration["previous_champion"],
        },
        "scores": judged_scores(run.data.metrics, run.data.tags.get(MEASURE_TAG, "")),
        "promote_run": run.info.run_id,
    }
    return promotion_decision(registration), registration["challenger"]["reason"], evidence


def decide(turn: Turn) -> tuple[str, str, dict[str, Any]]:
    """Run the turn's steps as far as they go: the decision, why, and what each step found."""
    found: dict[str, Any] = {}
    monitor_found, why = monitored(turn)
    if monitor_found is None:
        return TOO_LITTLE_TRAFFIC, why, found
    found["monitor"] = monitor_found
    if not monitor_found["alerts"]:
        return NO_ALERT, "monitor raised no alert: the served model is left alone", found
    harvest_found, why = harvested(turn)
    if harvest_found is None or not harvest_found["new"]:
        found["harvest"] = harvest_found
        return NOTHING_NEW, f"{why}; alerts: {'; '.join(monitor_found['alerts'])}", found
    found["harvest"] = harvest_found
    stage_harvest(turn.config)
    found["experiment"] = {"name": turn.experiment, "apply": f"dvc exp apply {turn.experiment}"}
    retrain(turn)
    decision, why, evidence = judged(turn)
    return decision, why, {**found, **evidence}


def logged(turn: Turn, document: dict[str, Any]) -> str:
    """The decision as one run of the loop's experiment: tags, metrics and the document."""
    tracking = resolve_tracking(
        turn.environment,
        Path.cwd(),
        turn.config.tracking.embedded_store_dir,
        turn.config.loop.experiment_name,
        turn.config.tracking.registered_model_name,
    )
    use_tracking(tracking)
    tags = {DECISION_TAG: document["decision"], PIPELINE_ID_TAG: turn.loop_id}
    with mlflow.start_run(run_name=f"loop: {document['decision']}", tags=tags) as run:
        mlflow.log_metrics(decision_metrics(document))
        mlflow.log_dict(document, "decision.json")
    return run.info.run_id


def notified(url: str, document: dict[str, Any]) -> None:
    """POST the decision to the notify URL; LoopError naming it when it is not taken."""
    try:
        response = requests.post(url, json=document, timeout=15)
        response.raise_for_status()
    except requests.RequestException as error:
        raise LoopError(
            f"the decision was not delivered to loop.notify_url {url}: {error}"
        ) from error


def run(config: LabConfig, environment: Mapping[str, str]) -> tuple[dict[str, Any], bool]:
    """One turn: the decision document (printed by the caller), logged to MLflow and posted
    to the notify URL; and whether the turn went through without a fault."""
    turn = Turn(config, environment, f"loop-{uuid.uuid4().hex[:12]}", datetime.now(UTC))
    try:
        decision, reason, found = decide(turn)
        faultless = True
    except (UserError, mlflow.exceptions.MlflowException, OSError) as error:
        log.error("the loop stopped: %s", error)
        decision, reason, found, faultless = FAILED, str(error), {}, False
    document = decision_document(decision, reason, turn.started, datetime.now(UTC), **found)
    document["loop_id"] = turn.loop_id
    document["run_id"] = logged(turn, document)
    if config.loop.notify_url:
        notified(config.loop.notify_url, document)
    return document, faultless


def decision_line(document: dict[str, Any]) -> str:
    """The decision as the one line the loop prints on stdout."""
    return json.dumps(document, sort_keys=False, default=str)
