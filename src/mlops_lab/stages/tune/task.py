"""tune: an Optuna study over one candidate's parameters, shared by any number of workers.

Not part of `dvc repro`. Each worker runs `mlops-lab tune`; all workers pointed at the same
storage (OPTUNA_STORAGE, else a SQLite file) share one study until its trial budget is spent.
Every trial is an MLflow child run; the study's best parameters go to the tuned-parameters
file that training reads, so the default pipeline stays fast and deterministic."""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import matplotlib
import mlflow
import numpy as np
import optuna
import pandas as pd
import yaml

from mlops_lab.common.files import write_text_atomically
from mlops_lab.common.secrets import with_password
from mlops_lab.config import CandidateConfig, ConfigError, StudyConfig, TuningConfig
from mlops_lab.evaluation.prepared import read_split
from mlops_lab.evaluation.scores import fold_scores, summarize_folds
from mlops_lab.kernel.features import resolve_features
from mlops_lab.kernel.modelling import build_model
from mlops_lab.stages.context import StageContext
from mlops_lab.stages.tune.transform import (
    BUDGET_STATES,
    budget_spent,
    suggest_params,
    tuned_params_document,
)
from mlops_lab.tracking.runs import STAGE_TAG, stage_run

log = logging.getLogger(__name__)


def storage_url(environment: Mapping[str, str], embedded_path: Path) -> str:
    """OPTUNA_STORAGE if set (e.g. the compose stack's PostgreSQL, its password from
    OPTUNA_STORAGE_PASSWORD), else a SQLite file."""
    configured = environment.get("OPTUNA_STORAGE", "").strip()
    if configured and environment.get("OPTUNA_STORAGE_PASSWORD"):
        return with_password(configured, environment["OPTUNA_STORAGE_PASSWORD"])
    if configured:
        return configured
    embedded_path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{embedded_path.resolve()}"


def open_study(settings: TuningConfig, study_settings: StudyConfig, url: str) -> optuna.Study:
    """The shared study, created by whichever worker comes first."""
    storage = optuna.storages.RDBStorage(
        url,
        heartbeat_interval=settings.heartbeat_seconds,
        grace_period=3 * settings.heartbeat_seconds,
    )
    return optuna.create_study(
        storage=storage,
        study_name=study_settings.study_name,
        direction="maximize",
        load_if_exists=True,
        # Unseeded: workers seeded alike would propose the same first trials.
        sampler=optuna.samplers.TPESampler(n_startup_trials=8),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
    )


def objective(
    candidate: CandidateConfig,
    settings: TuningConfig,
    study_settings: StudyConfig,
    metric: str,
    seed: int,
    features: pd.DataFrame,
    target: pd.Series,
):
    """Mean CV score of one trial's parameters; pruned when its first folds trail the others."""

    def score(trial: optuna.Trial) -> float:
        params = {**candidate.params, **suggest_params(trial, study_settings.search_space)}
        model = build_model(candidate.estimator, resolve_features(candidate.features), params)
        scores: list[dict[str, float]] = []
        with mlflow.start_run(
            run_name=f"trial-{trial.number}",
            nested=True,
            tags={STAGE_TAG: "tune_trial", "mlops_lab.study": study_settings.study_name},
        ):
            mlflow.log_params(trial.params)
            for step, fold in enumerate(
                fold_scores(model, features, target, settings.cv_folds, seed)
            ):
                scores.append(fold)
                running = float(np.mean([each[metric] for each in scores]))
                mlflow.log_metric(f"cv_{metric}_so_far", running, step=step)
                trial.report(running, step)
                if trial.should_prune():
                    mlflow.set_tag("mlops_lab.trial_state", "pruned")
                    break
            else:
                means, spreads = summarize_folds(scores)
                mlflow.log_metrics({f"cv_{name}": value for name, value in means.items()})
                mlflow.log_metrics({f"cv_{name}_sd": value for name, value in spreads.items()})
                mlflow.set_tag("mlops_lab.trial_state", "complete")
                return means[metric]
        raise optuna.TrialPruned()

    return score


def report_progress(budget: int):
    """One log line per finished trial: its score, the best so far and the budget spent."""

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        log.info(
            "trial %d %s%s; best %s; %d of %d trials finished or running",
            trial.number,
            trial.state.name.lower(),
            f" at {trial.value:.4f}" if trial.value is not None else "",
            f"{study.best_value:.4f}" if complete else "none yet",
            budget_spent(study),
            budget,
        )

    return callback


def wait_for_other_workers(study: optuna.Study, poll_seconds: float) -> None:
    """Return once no trial of the study is running, so that every worker writes the same best
    parameters: the last one to write may be the first to have stopped. A dead worker's trial
    stops counting once its heartbeat is stale."""
    while True:
        optuna.storages.fail_stale_trials(study)
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        if not running:
            return
        log.info(
            "waiting for %d running trial(s) of other workers (%s) before writing the best",
            len(running),
            ", ".join(str(trial.number) for trial in running),
        )
        time.sleep(poll_seconds)


def log_study_plots(study: optuna.Study) -> None:
    """The study's history and, once there are enough trials, its parameter importances."""
    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as optuna_plots

    history = optuna_plots.plot_optimization_history(study)
    mlflow.log_figure(history.figure, "tuning/optimization_history.png")
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) >= 3:
        importances = optuna_plots.plot_param_importances(study)
        mlflow.log_figure(importances.figure, "tuning/param_importances.png")


def budget_callbacks(trials: int) -> list[Callable[..., None]]:
    """Stop at the study's budget, counting other workers' running trials, and report."""
    return [optuna.study.MaxTrialsCallback(trials, states=BUDGET_STATES), report_progress(trials)]


def run(context: StageContext, candidate_name: str | None) -> None:
    """Run trials of the candidate's shared study until its budget is spent; write its best
    parameters (the first study of config.yaml's tuning.studies when no candidate is named)."""
    settings = context.config.tuning
    training = context.config.training
    tuned, study_settings = settings.study_for(candidate_name)
    candidate = training.candidate(tuned, "tuning.studies")
    if candidate.estimator == "soft_vote":
        raise ConfigError(
            f"tuning.studies: {candidate.name} is a soft_vote; tune its members instead"
        )
    split = read_split(context.config, "tuning")
    url = storage_url(os.environ, settings.embedded_storage_path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Heartbeats and the matplotlib plots are marked experimental; we pin optuna's version.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study = open_study(settings, study_settings, url)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    with stage_run(
        context.tracking,
        context.lineage,
        "tune",
        tags={"mlops_lab.study": study_settings.study_name, "mlops_lab.worker": worker},
    ):
        mlflow.log_params(
            {"candidate": candidate.name, "trials": settings.trials, "cv_folds": settings.cv_folds}
        )
        # Trials of workers that died stop counting as running (they become failed).
        optuna.storages.fail_stale_trials(study)
        log.info(
            "worker %s joins study %s (%d of %d trials finished or running)",
            worker,
            study_settings.study_name,
            budget_spent(study),
            settings.trials,
        )
        if budget_spent(study) < settings.trials:
            trial = objective(
                candidate,
                settings,
                study_settings,
                training.selection.metric,
                training.cv_random_state,
                split.train_features,
                split.train_target,
            )
            study.optimize(trial, callbacks=budget_callbacks(settings.trials), gc_after_trial=True)
        wait_for_other_workers(study, poll_seconds=settings.heartbeat_seconds)
        document = tuned_params_document(study, training.selection.metric, settings.cv_folds)
        mlflow.log_dict(document, "tuning/tuned_params.yaml")
        log_study_plots(study)
        write_text_atomically(
            study_settings.tuned_params_path,
            "# Written by `mlops-lab tune`: the best parameters its study found.\n"
            + yaml.safe_dump(document, sort_keys=False),
        )
        log.info(
            "best %s %.4f with %s", training.selection.metric, study.best_value, document["params"]
        )
