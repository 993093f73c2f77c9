"""ablate: the candidate cross-validated again with each feature group removed in turn.

Not part of `dvc repro` (it refits the candidate once per group). Each removal is an MLflow
child run; the table and its plot are artifacts of the `ablation` run and files in the repo."""

from __future__ import annotations

import logging

import mlflow

from mlops_lab.common.files import atomic_path, save_figure
from mlops_lab.evaluation.prepared import read_split
from mlops_lab.evaluation.scores import fold_scores, summarize_folds
from mlops_lab.kernel.features import FEATURE_GROUPS, resolve_features
from mlops_lab.kernel.modelling import build_model
from mlops_lab.stages.ablate.transform import (
    NOTHING_REMOVED,
    ablation_feature_sets,
    ablation_figure,
    ablation_table,
)
from mlops_lab.stages.context import StageContext
from mlops_lab.tracking.runs import stage_run

log = logging.getLogger(__name__)


def run(context: StageContext) -> None:
    """Score the candidate without each feature group; write and log the ablation table."""
    settings = context.config.ablation
    training = context.config.training
    candidate = training.candidate(settings.candidate, "ablation.candidate")
    split = read_split(context.config, "ablating")
    feature_sets = ablation_feature_sets(resolve_features(candidate.features), FEATURE_GROUPS)
    with stage_run(
        context.tracking, context.lineage, "ablation", tags={"mlops_lab.candidate": candidate.name}
    ):
        mlflow.log_params({"candidate": candidate.name, "cv_folds": settings.cv_folds})
        scores: dict[str, list[dict[str, float]]] = {}
        for position, (removed, kept) in enumerate(feature_sets.items(), start=1):
            # The probability model only: a decision step would refit it per fold to relabel.
            model = build_model(candidate.estimator, kept, candidate.params)
            scores[removed] = list(
                fold_scores(
                    model,
                    split.train_features,
                    split.train_target,
                    settings.cv_folds,
                    training.cv_random_state,
                )
            )
            means, spreads = summarize_folds(scores[removed])
            label = removed if removed == NOTHING_REMOVED else f"without {removed}"
            with mlflow.start_run(run_name=label, nested=True):
                mlflow.log_params({"removed": removed, "features": ",".join(kept)})
                mlflow.log_metrics({f"cv_{name}": value for name, value in means.items()})
                mlflow.log_metrics({f"cv_{name}_std": value for name, value in spreads.items()})
            log.info(
                "[%d/%d] %s (%d features): CV ROC AUC %.4f ± %.4f",
                position,
                len(feature_sets),
                label,
                len(kept),
                means["roc_auc_ovr"],
                spreads["roc_auc_ovr"],
            )
        table = ablation_table(scores, {name: len(kept) for name, kept in feature_sets.items()})
        with atomic_path(settings.table_path) as temporary:
            table.to_csv(temporary, index=False)
        save_figure(ablation_figure(table), settings.plot_path)
        mlflow.log_artifact(str(settings.table_path), artifact_path="ablation")
        mlflow.log_artifact(str(settings.plot_path), artifact_path="ablation")
        full = table[table["removed"] == NOTHING_REMOVED].iloc[0]
        mlflow.log_metric("cv_roc_auc_ovr", float(full["cv_roc_auc_ovr"]))
    columns = ["removed", "features", "cv_roc_auc_ovr", "roc_auc_ovr_change"]
    columns += ["roc_auc_ovr_change_std", "cv_macro_f1", "macro_f1_change", "log_loss_change"]
    print(table[columns].to_string(index=False))
    print(f"\nwrote {settings.table_path} and {settings.plot_path}")
