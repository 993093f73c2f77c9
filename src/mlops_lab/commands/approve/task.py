"""approve: the registry's champion alias → a challenger waiting for approval, its files in the
champion folder and models/registration.json, the version tagged who approved it and when.
Running services follow the alias or the folder within their refresh interval."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from mlops_lab.commands.approve.transform import ApprovalError, approval_note, approval_problem
from mlops_lab.common.who import who_runs
from mlops_lab.config import LabConfig
from mlops_lab.tracking.registry import (
    APPROVAL_TAG,
    APPROVED,
    CHAMPION,
    GATE_PASSED,
    GATE_TAG,
    JUDGED_AGAINST_TAG,
    alias_version,
    make_champion,
    record_champion,
    version_tag,
)
from mlops_lab.tracking.runs import tracking_uri

log = logging.getLogger(__name__)

APPROVAL_NOTE_TAG = "mlops_lab.approved"


def run(config: LabConfig, environment: Mapping[str, str], version: str) -> str | None:
    """Make the version champion, with the champion folder and registration in step; the
    champion it replaced."""
    uri = tracking_uri(environment, Path.cwd(), config.tracking.embedded_store_dir)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient()
    model_name = config.tracking.registered_model_name
    approval = version_tag(client, model_name, version, APPROVAL_TAG)
    judged_against = version_tag(client, model_name, version, JUDGED_AGAINST_TAG)
    champion = alias_version(client, model_name, CHAMPION)
    problem = approval_problem(version, approval, judged_against, champion)
    if problem:
        raise ApprovalError(f"{model_name}: {problem}")
    make_champion(client, model_name, version, config.promotion.champion_dir)
    when = datetime.now(UTC).isoformat(timespec="seconds")
    note = approval_note(when, who_runs(environment), champion)
    for tag, value in (
        (APPROVAL_TAG, APPROVED),
        (GATE_TAG, GATE_PASSED),
        (APPROVAL_NOTE_TAG, note),
    ):
        client.set_model_version_tag(model_name, version, tag, value)
    record_champion(
        config.promotion.registration_path,
        model_name,
        version,
        config.promotion.champion_dir,
        champion,
        {"approval": note},
    )
    log.info("champion of %s: v%s → v%s (%s)", model_name, champion, version, note)
    return champion
