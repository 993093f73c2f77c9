"""rollback: the registry's champion alias → an earlier version that passed the gate, its
files in the champion folder and models/registration.json, the versions tagged who, when and
why. Running services follow the alias or the folder within their refresh interval."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from mlops_lab.commands.rollback.transform import RollbackError, rollback_note, rollback_target
from mlops_lab.common.who import who_runs
from mlops_lab.config import LabConfig
from mlops_lab.tracking.registry import (
    CHAMPION,
    GATE_PASSED,
    GATE_TAG,
    ROLLBACK_TAG,
    alias_version,
    make_champion,
    record_champion,
)
from mlops_lab.tracking.runs import tracking_uri

log = logging.getLogger(__name__)


def gated_versions(client: MlflowClient, model_name: str) -> list[str]:
    """The versions of the model that the promote stage made champion."""
    return [
        str(version.version)
        for version in client.search_model_versions(f"name = '{model_name}'")
        if version.tags.get(GATE_TAG) == GATE_PASSED
    ]


@dataclass(frozen=True)
class RollbackOptions:
    """`mlops-lab rollback`'s options: the version to serve again (None: the one before) and
    why."""

    reason: str
    version: str | None = None


def run(config: LabConfig, environment: Mapping[str, str], options: RollbackOptions) -> str:
    """Move the champion alias back, with the champion folder and registration in step; the
    version it now names."""
    uri = tracking_uri(environment, Path.cwd(), config.tracking.embedded_store_dir)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient()
    model_name = config.tracking.registered_model_name
    champion = alias_version(client, model_name, CHAMPION)
    if champion is None:
        raise RollbackError(f"{model_name} has no champion at {uri}: nothing to roll back")
    target = rollback_target(champion, gated_versions(client, model_name), options.version)
    when = datetime.now(UTC).isoformat(timespec="seconds")
    who = who_runs(environment)

    make_champion(client, model_name, target, config.promotion.champion_dir)
    for version, note in rollback_note(when, who, options.reason, champion, target).items():
        client.set_model_version_tag(model_name, version, ROLLBACK_TAG, note)
    rollback = {"from": champion, "to": target, "at": when, "by": who, "reason": options.reason}
    record_champion(
        config.promotion.registration_path,
        model_name,
        target,
        config.promotion.champion_dir,
        champion,
        {"rollback": rollback},
    )
    log.info("champion of %s: v%s → v%s (%s)", model_name, champion, target, options.reason)
    return target
