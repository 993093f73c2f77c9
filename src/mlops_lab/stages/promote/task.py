"""promote: the challenger takes the champion alias only after it has answered through the
serving path and beaten the champion on the same test part; the champion's files are then
what `models/` serves.

A stage that fails before this one leaves every alias where it was. Two pipelines racing for
one registry cannot both win: the champion is scored again whenever the alias moved since this
run looked, right up to the moment the alias is set."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from typing import Any

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from mlops_lab.common.errors import UserError
from mlops_lab.common.files import replace_directory_atomically, write_json_atomically
from mlops_lab.config import LabConfig
from mlops_lab.evaluation.prepared import Split, read_split
from mlops_lab.evaluation.scores import scores_on_views, selection_score
from mlops_lab.stages.context import StageContext
from mlops_lab.stages.promote.transform import (
    awaits_approval,
    champion_change,
    measure_name,
    promotion_verdict,
    recent_traffic_verdict,
    smoke_problem,
)
from mlops_lab.tracking.registry import (
    APPROVAL_TAG,
    AWAITING_APPROVAL,
    CHALLENGER,
    CHAMPION,
    GATE_PASSED,
    GATE_TAG,
    JUDGED_AGAINST_TAG,
    alias_version,
    champion_entry,
    download_version,
    load_version,
    local_version,
    run_of_local_model,
    version_uri,
)
from mlops_lab.tracking.runs import stage_run

log = logging.getLogger(__name__)


class PromotionError(UserError, RuntimeError):
    """The challenger cannot be judged: it has not answered, or the alias will not hold still."""


@dataclass(frozen=True)
class Judged:
    """What the challenger and the champion are scored on: the test part, and its listings
    labelled by the service's traffic when there are enough of them to judge."""

    split: Split
    recent_listings: int
    judge_recent: bool

    @classmethod
    def read(cls, config: LabConfig) -> Judged:
        split = read_split(config, "promotion")
        recent = int(split.test_from_traffic.sum())
        return cls(split, recent, recent >= config.monitoring.minimum_window)


def selection_on(config: LabConfig, model: Any, features: pd.DataFrame, target: pd.Series) -> float:
    """A model's selection score on these listings."""
    scores = scores_on_views(model, features, target, config.data_prep.price_categories)
    return selection_score(
        {view: scored[0] for view, scored in scores.items()}, config.training.selection
    )


def recent_score(config: LabConfig, model: Any, judged: Judged) -> float | None:
    """A model's selection score on the test part's recent traffic; None when not judged."""
    if not judged.judge_recent:
        return None
    split, recent = judged.split, judged.split.test_from_traffic
    return selection_on(config, model, split.test_features[recent], split.test_target[recent])


def champion_scores(
    config: LabConfig, model_name: str, version: str, judged: Judged
) -> tuple[float, float | None]:
    """A registered version's selection scores on this pipeline's test part and its recent
    traffic."""
    try:
        champion = load_version(model_name, version)
    except Exception as error:  # whatever the reason, it cannot be judged against: say so
        raise PromotionError(
            f"champion v{version} cannot be loaded here ({type(error).__name__}: {error}), so "
            "this run's model cannot be judged against it and is not promoted. If that "
            f"version is retired on purpose, remove its alias in the MLflow UI (Models → "
            f"{model_name} → v{version}) and rerun dvc repro"
        ) from error
    split = judged.split
    whole = selection_on(config, champion, split.test_features, split.test_target)
    return whole, recent_score(config, champion, judged)


def verdict(
    config: LabConfig,
    challenger: dict,
    champion: str | None,
    judged: Judged,
    challenger_recent: float | None,
    measure: str,
) -> tuple[bool, str]:
    """Whether the challenger wins against this champion, on the test part and then on the
    recent traffic, and why."""
    version, challenger_score = challenger["version"], challenger["test_selection_score"]
    mlflow.log_metric("test.challenger", challenger_score)
    if champion is None:
        return promotion_verdict(version, challenger_score, None, None, measure)
    score, champion_recent = champion_scores(config, challenger["model_name"], champion, judged)
    mlflow.log_metric("test.champion", score)
    promoted, reason = promotion_verdict(version, challenger_score, champion, score, measure)
    if not promoted:
        return promoted, reason
    recent_scores = None
    if challenger_recent is not None and champion_recent is not None:
        recent_scores = (challenger_recent, champion_recent)
        mlflow.log_metrics(
            {
                "recent_traffic.challenger": challenger_recent,
                "recent_traffic.champion": champion_recent,
            }
        )
    passes, why = recent_traffic_verdict(
        judged.recent_listings,
        config.monitoring.minimum_window,
        recent_scores,
        config.promotion.recent_traffic_tolerance,
    )
    if passes:
        return True, f"{reason}; {why}"
    return False, (
        f"v{version} is not promoted and becomes the challenger: it wins on the test part "
        f"(v{version} scores {challenger_score:.4f} and champion v{champion} {score:.4f}, "
        f"{measure}) and loses on recent traffic ({why})"
    )


@dataclass(frozen=True)
class Judgement:
    """The alias the challenger earned, why, and the champion it was judged against."""

    won: bool
    # A winner that waits as challenger, because promotion requires approval.
    awaiting_approval: bool
    reason: str
    champion: str | None

    @property
    def promoted(self) -> bool:
        return self.won and not self.awaiting_approval


def judge(context: StageContext, challenger: dict, measure: str) -> Judgement:
    """Set the alias the challenger earns. The champion is read again just before the alias
    moves; if it changed, it is scored again."""
    model_name, version = challenger["model_name"], challenger["version"]
    client = MlflowClient()
    judged = Judged.read(context.config)
    mlflow.log_metric("recent_traffic.listings", judged.recent_listings)
    # The challenger's own score on recent traffic, once: the champion's may change between
    # attempts, the challenger's cannot.
    challenger_recent = (
        recent_score(context.config, load_version(model_name, version), judged)
        if judged.judge_recent
        else None
    )
    for _ in range(context.config.promotion.attempts):
        champion = alias_version(client, model_name, CHAMPION)
        if champion == version:
            return Judgement(True, False, f"v{version} is already the champion", champion)
        promoted, reason = verdict(
            context.config, challenger, champion, judged, challenger_recent, measure
        )
        now = alias_version(client, model_name, CHAMPION)
        if now != champion:
            log.warning(
                "the champion moved from v%s to v%s while it was scored: again", champion, now
            )
            continue
        waits = awaits_approval(promoted, context.config.loop.require_approval, champion, version)
        client.set_registered_model_alias(
            model_name, CHAMPION if promoted and not waits else CHALLENGER, version
        )
        if waits:
            client.set_model_version_tag(model_name, version, APPROVAL_TAG, AWAITING_APPROVAL)
            client.set_model_version_tag(model_name, version, JUDGED_AGAINST_TAG, champion or "")
            reason += (
                f"; it waits for approval (loop.require_approval): mlops-lab promote "
                f"--approve {version}"
            )
        if champion != challenger["champion_when_trained"]:
            change = champion_change(challenger["champion_when_trained"], champion)
            reason += f" (the champion moved while this run went on: {change})"
        return Judgement(promoted, waits, reason, champion)
    raise PromotionError(
        f"the champion alias of {model_name} moved each of the "
        f"{context.config.promotion.attempts} times v{version} was judged against it: not "
        "promoted; rerun dvc repro once the other pipelines are done"
    )


def hold_champion(context: StageContext, model_name: str, champion: str) -> None:
    """Make the champion folder hold the champion's files: kept, copied or downloaded."""
    config = context.config
    target = config.promotion.champion_dir
    challenger_dir = config.training.model_dir
    if local_version(challenger_dir) == (model_name, champion):
        replace_directory_atomically(target, lambda path: shutil.copytree(challenger_dir, path))
        return
    registered_run = MlflowClient().get_model_version(model_name, champion).run_id
    # The same version number in another tracking store is another model: compare runs too.
    if (
        local_version(target) == (model_name, champion)
        and run_of_local_model(target) == registered_run
    ):
        return
    download_version(model_name, champion, target)


def run(context: StageContext) -> None:
    """Judge the challenger, move the alias it earns, and hold the champion's files locally."""
    config = context.config
    challenger = json.loads(config.training.challenger_path.read_text())
    model_name, version = challenger["model_name"], challenger["version"]
    smoke_path = config.prediction_app.output_path
    if not smoke_path.is_file():
        raise PromotionError(
            f"{smoke_path} does not exist: run dvc repro, whose smoke stage writes it"
        )
    problem = smoke_problem(
        json.loads(smoke_path.read_text()), version, len(config.prediction_app.payloads())
    )
    if problem:
        raise PromotionError(f"v{version} cannot be promoted: {problem}")
    selection = config.training.selection
    measure = measure_name(selection.metric, dict(selection.view_weights))
    with stage_run(
        context.tracking, context.lineage, "promote", tags={"mlops_lab.version": version}
    ):
        judgement = judge(context, challenger, measure)
        promoted, reason, previous = judgement.promoted, judgement.reason, judgement.champion
        champion = version if promoted else previous
        hold_champion(context, model_name, champion)
        registration = {
            "model_name": model_name,
            "champion": champion_entry(model_name, champion, config.promotion.champion_dir),
            "challenger": {
                "version": version,
                "model_uri": version_uri(model_name, version),
                "local_path": str(config.training.model_dir),
                "promoted": promoted,
                "awaiting_approval": judgement.awaiting_approval,
                "reason": reason,
            },
            "previous_champion": previous,
        }
        write_json_atomically(config.promotion.registration_path, registration)
        client = MlflowClient()
        client.set_model_version_tag(model_name, version, "mlops_lab.promotion", reason)
        if promoted:
            client.set_model_version_tag(model_name, version, GATE_TAG, GATE_PASSED)
        mlflow.set_tags(
            {
                "mlops_lab.promoted": str(promoted).lower(),
                "mlops_lab.awaiting_approval": str(judgement.awaiting_approval).lower(),
                "mlops_lab.champion": champion or "",
                "mlops_lab.measure": measure,
            }
        )
        mlflow.log_dict(registration, "registration.json")
        log.info("%s", reason)
        print(f"{model_name}: {reason} → {'CHAMPION' if promoted else 'CHALLENGER'}")
