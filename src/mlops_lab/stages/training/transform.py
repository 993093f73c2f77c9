"""Pure functions of training: each candidate cross-validated and fitted (ensembles from their
members), its scores on both views, the winner, and the tables and metrics that report them."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, parallel_config
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from mlops_lab.config import CandidateConfig, SelectionConfig, TrainingConfig
from mlops_lab.evaluation.prepared import Split
from mlops_lab.evaluation.scores import (
    Folds,
    HeldOut,
    Scores,
    cross_validated_scores,
    fold_prediction,
    gathered,
    required_view,
    routed_held_out,
    scores_on_views,
    selection_score,
    vote_probabilities,
    with_decision,
)
from mlops_lab.kernel.decision import MacroF1Decision
from mlops_lab.kernel.features import resolve_features
from mlops_lab.kernel.listing import VIEWS
from mlops_lab.kernel.modelling import Model, assemble_soft_vote, build_model, predict_sequentially

# The registered version's tag that names the candidate key it was trained under.
CANDIDATE_KEY_TAG = "candidate_key"
# A registered version's tag: the hash of the code that packaged it (training/task.py).
PACKAGING_TAG = "packaging"


@dataclass(frozen=True)
class ViewScores:
    """How a candidate scores on one view: CV of the training part, and the test part once."""

    cv_mean: Scores
    cv_std: Scores
    test: Scores
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class CandidateResult:
    name: str
    views: dict[str, ViewScores]
    # Seconds of work, summed over the processes its fits ran in: what the candidate costs,
    # not how long the run waited for it.
    seconds: float = 0.0


def flat_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested parameters (an ensemble's members) as one level of dotted names."""
    flat: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, dict):
            flat.update(flat_params(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def candidate_params(candidate: CandidateConfig) -> dict[str, Any]:
    """A candidate's settings as MLflow params: estimator, decision, features, parameters."""
    features = (
        "routed" if candidate.features is None else ",".join(resolve_features(candidate.features))
    )
    return {
        "estimator": candidate.estimator,
        "decision": candidate.decision,
        "features": features,
        **flat_params(candidate.params),
    }


def candidate_key(
    candidate: CandidateConfig,
    member_keys: list[str],
    prepared_data_sha256: str,
    training: TrainingConfig,
    categories: list[str],
    code_digest: str,
) -> str:
    """One hash of everything a candidate's training depends on: its settings (tuned ones
    included), its members' keys, the prepared data, the split and folds, and the code."""
    document = {
        "candidate": candidate.model_dump(mode="json", exclude={"tuned_params_path"}),
        "members": member_keys,
        "data": prepared_data_sha256,
        "split": [training.test_size, training.split_random_state],
        "folds": [training.cv_folds, training.cv_random_state],
        "categories": categories,
        "code": code_digest,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


def candidate_keys(
    training: TrainingConfig, prepared_data_sha256: str, categories: list[str], code_digest: str
) -> dict[str, str]:
    """Every candidate's key by name (candidate_key), members' keys first."""
    keys: dict[str, str] = {}
    for candidate in training.candidates:
        members = [keys[name] for name in candidate.members]
        keys[candidate.name] = candidate_key(
            candidate, members, prepared_data_sha256, training, categories, code_digest
        )
    return keys


def input_example(test_features: pd.DataFrame) -> pd.DataFrame:
    """Listings logged with the model: five with every field and the same five as callers send
    them, so every load checks the compiled path on both kinds of listing."""
    full = test_features.head(5)
    return pd.concat([full, required_view(full)], ignore_index=True)


def selection_score_in_cv(result: CandidateResult, selection: SelectionConfig) -> float:
    """A candidate's selection score in CV of the training part."""
    return selection_score({v: s.cv_mean for v, s in result.views.items()}, selection)


def selection_score_on_test(result: CandidateResult, selection: SelectionConfig) -> float:
    """A candidate's selection score on the test part."""
    return selection_score({v: s.test for v, s in result.views.items()}, selection)


def choose_winner(results: list[CandidateResult], selection: SelectionConfig) -> CandidateResult:
    """The candidate with the best CV selection score; the earlier one in config on a tie."""
    return max(
        results,
        key=lambda result: (selection_score_in_cv(result, selection), -results.index(result)),
    )


def progress_line(result: CandidateResult, selection: SelectionConfig) -> str:
    """One candidate's headline scores, as the log reports each candidate when it is done."""
    full, required = result.views["full"].test, result.views["required"].test
    return (
        f"{result.name}: CV selection score {selection_score_in_cv(result, selection):.4f}; "
        f"test ROC AUC full {full['roc_auc_ovr']:.4f}, required {required['roc_auc_ovr']:.4f}; "
        f"macro F1 full {full['macro_f1']:.4f}, required {required['macro_f1']:.4f} "
        f"({result.seconds:.1f} s of work)"
    )


def version_tags(
    winner: CandidateResult,
    winner_key: str,
    packaging: str,
    selection: SelectionConfig,
    lineage: dict[str, str],
) -> dict[str, str]:
    """The registered version's tags: lineage, candidate, packaging and test scores on both
    views."""
    return {
        **lineage,
        "candidate": winner.name,
        CANDIDATE_KEY_TAG: winner_key,
        PACKAGING_TAG: packaging,
        "test_selection_score": f"{selection_score_on_test(winner, selection):.6f}",
        **{
            f"test_{view}_{name}": f"{value:.6f}"
            for view, scores in winner.views.items()
            for name, value in scores.test.items()
        },
    }


def challenger_document(
    winner: CandidateResult,
    winner_key: str,
    selection: SelectionConfig,
    model_name: str,
    model_version: str,
    model_uri: str,
    run_id: str,
    champion: str | None,
) -> dict[str, Any]:
    """models/challenger.json: the version this run registered, its test scores, and the
    champion when it was trained."""
    return {
        "candidate_key": winner_key,
        "model_name": model_name,
        "version": model_version,
        "model_uri": model_uri,
        "candidate": winner.name,
        "run_id": run_id,
        "test_selection_score": selection_score_on_test(winner, selection),
        "test": {view: scores.test for view, scores in winner.views.items()},
        "champion_when_trained": champion,
    }


def results_table(results: list[CandidateResult], winner: str, selection: SelectionConfig) -> str:
    """A fixed-width text table of every candidate's selection score and both views' scores."""
    weights = ", ".join(f"{view} {weight:g}" for view, weight in selection.view_weights.items())
    header = (
        f"{'candidate':<34} {'CV selection':>12} │ {'full view: CV AUC':>17} {'test AUC':>8} "
        f"{'test F1':>7} │ {'required: CV AUC':>16} {'test AUC':>8} {'test F1':>7} │ {'work':>6}"
    )
    lines = [
        f"selection: CV {selection.metric}, views weighted {weights}",
        header,
        "─" * len(header),
    ]
    for result in results:
        marker = "  ← winner" if result.name == winner else ""
        full, required = result.views["full"], result.views["required"]
        lines.append(
            f"{result.name:<34} {selection_score_in_cv(result, selection):>12.4f} │ "
            f"{full.cv_mean['roc_auc_ovr']:>17.4f} {full.test['roc_auc_ovr']:>8.4f} "
            f"{full.test['macro_f1']:>7.4f} │ {required.cv_mean['roc_auc_ovr']:>16.4f} "
            f"{required.test['roc_auc_ovr']:>8.4f} {required.test['macro_f1']:>7.4f} │ "
            f"{result.seconds:>5.1f}s{marker}"
        )
    return "\n".join(lines)


def candidate_metrics(result: CandidateResult) -> dict[str, float]:
    """A candidate's CV and test scores on both views as flat metric names, e.g.
    cv_required_roc_auc_ovr, cv_full_macro_f1_std, test_required_recall_lux."""
    metrics: dict[str, float] = {}
    for view, scores in result.views.items():
        metrics.update({f"cv_{view}_{name}": value for name, value in scores.cv_mean.items()})
        metrics.update({f"cv_{view}_{name}_std": value for name, value in scores.cv_std.items()})
        metrics.update({f"test_{view}_{name}": value for name, value in scores.test.items()})
        for category, measures in scores.per_class.items():
            metrics.update(
                {
                    f"test_{view}_{measure}_{category}": value
                    for measure, value in measures.items()
                    if measure != "support"
                }
            )
    return metrics


def candidates_frame(
    results: list[CandidateResult], winner: str, selection: SelectionConfig
) -> pd.DataFrame:
    """One row per candidate with its selection score and both views' CV and test scores."""
    rows = []
    for result in results:
        row: dict[str, object] = {
            "candidate": result.name,
            "winner": result.name == winner,
            "cv_selection_score": selection_score_in_cv(result, selection),
            "test_selection_score": selection_score_on_test(result, selection),
        }
        for view, scores in result.views.items():
            row.update({f"cv_{view}_{name}": value for name, value in scores.cv_mean.items()})
            row.update({f"cv_{view}_{name}_std": value for name, value in scores.cv_std.items()})
            row.update({f"test_{view}_{name}": value for name, value in scores.test.items()})
        rows.append(row)
    return pd.DataFrame(rows).round(6)


def metrics_document(
    results: list[CandidateResult],
    winner: CandidateResult,
    reference: str,
    selection: SelectionConfig,
) -> dict[str, object]:
    """metrics/training.json: the winner's scores per view, the reference's, and every
    candidate's headline scores per view (so `dvc metrics show` lists them side by side)."""
    return {
        "winner": winner.name,
        "selection": {
            "metric": selection.metric,
            "view_weights": dict(selection.view_weights),
            "cv_score": selection_score_in_cv(winner, selection),
            "test_score": selection_score_on_test(winner, selection),
        },
        **{
            view: {
                "test": scores.test,
                "cv_mean": scores.cv_mean,
                "cv_std": scores.cv_std,
                "per_class": scores.per_class,
            }
            for view, scores in winner.views.items()
        },
        "reference": {
            "name": reference,
            **{
                view: {"test": scores.test}
                for view, scores in next(r for r in results if r.name == reference).views.items()
            },
        },
        "candidates": {
            result.name: {
                view: {
                    "cv_roc_auc_ovr": scores.cv_mean["roc_auc_ovr"],
                    "test_roc_auc_ovr": scores.test["roc_auc_ovr"],
                    "test_macro_f1": scores.test["macro_f1"],
                }
                for view, scores in result.views.items()
            }
            for result in results
        },
    }


@dataclass(frozen=True)
class Trained:
    """A candidate's final model and its held-out evidence, which ensembles reuse."""

    model: Model
    held_out: HeldOut


def train_candidates(
    candidates: list[CandidateConfig],
    split: Split,
    folds: Folds,
    reused: dict[str, Trained],
    processes: int = 1,
) -> Iterator[tuple[Trained, float]]:
    """Each candidate trained, in order, with the seconds of work it took. The folds and final
    fits of every fitted candidate start at once in `processes` processes, so one candidate is
    scored while the next are fitted. Ensembles are assembled from their members (those in
    `reused` or trained here) instead of fitting them again: the same models and the same
    numbers, a fraction of the time."""
    fitted = [candidate for candidate in candidates if not candidate.members]
    fits = fits_in_order([fit_jobs(candidate, split, folds) for candidate in fitted], processes)
    trained = dict(reused)
    with closing(fits):
        for candidate in candidates:
            started = time.perf_counter()
            if candidate.members:
                trained[candidate.name] = assembled(candidate, split, folds, trained)
                fit_seconds = 0.0
            else:
                timed_fits = next(fits)
                trained[candidate.name] = from_fits(
                    candidate, [fit for fit, _ in timed_fits], split, folds
                )
                fit_seconds = sum(seconds for _, seconds in timed_fits)
            yield trained[candidate.name], fit_seconds + time.perf_counter() - started


def assembled(
    candidate: CandidateConfig, split: Split, folds: Folds, trained: dict[str, Trained]
) -> Trained:
    """An ensemble from its members' fitted models and held-out predictions."""
    features, target = split.train_features, split.train_target
    members = [trained[name] for name in candidate.members]
    if candidate.estimator == "field_router":
        router = build_model("field_router", (), candidate.params)
        router.with_fitted_members([member.model for member in members])
        routes = [fields for _, fields, _ in router.routes]
        return Trained(router, routed_held_out(routes, [m.held_out for m in members], features))
    probabilities = vote_probabilities([member.held_out for member in members])
    classes = members[0].held_out.classes
    model = assemble_soft_vote(
        [(name, member.model) for name, member in zip(candidate.members, members, strict=True)],
        lambda vote: decided(vote, candidate.decision, probabilities["full"], target),
    )
    return Trained(model, with_decision(probabilities, classes, target, folds, candidate.decision))


def fit_jobs(candidate: CandidateConfig, split: Split, folds: Folds) -> list[Any]:
    """A fitted candidate's work as jobs: its final fit on the whole training part first (the
    longest), then one fit and prediction per fold."""
    model = build_model(candidate.estimator, resolve_features(candidate.features), candidate.params)
    features, target = split.train_features, split.train_target
    return [
        delayed(timed)(fitted_on, model, features, target),
        *(delayed(timed)(fold_prediction, model, features, target, fold, VIEWS) for fold in folds),
    ]


def fits_in_order(jobs: list[list[Any]], processes: int) -> Iterator[list[Any]]:
    """Every group of jobs run side by side in `processes` processes, the results yielded group
    by group in order while the later groups run."""
    # Each process fits on one thread: a histogram gradient boosting gains about 15% from a
    # second thread, a second process doubles the work done, and one thread gives the same
    # numbers on any machine. The config applies to this pool only, not to the caller's code.
    with parallel_config(backend="loky", inner_max_num_threads=1):
        results = Parallel(n_jobs=processes, return_as="generator", batch_size=1)(
            job for group in jobs for job in group
        )
    with closing(results):
        for group in jobs:
            yield [next(results) for _ in group]


def timed(function: Callable[..., Any], *arguments: Any) -> tuple[Any, float]:
    """A function's result and the seconds it took."""
    started = time.perf_counter()
    return function(*arguments), time.perf_counter() - started


def from_fits(candidate: CandidateConfig, fits: list[Any], split: Split, folds: Folds) -> Trained:
    """A fitted candidate from its jobs' results: the final model wrapped in its decision step,
    and the folds' held-out predictions."""
    final, *predictions = fits
    target = split.train_target
    probabilities, classes = gathered(predictions, len(target))
    # The decision step learns its weights from this cross-validation's held-out
    # predictions, so the folds are fitted once, not once more inside the step.
    model = Pipeline(
        [
            *final.steps[:-1],
            ("classifier", decided(final[-1], candidate.decision, probabilities["full"], target)),
        ]
    )
    predict_sequentially(model)
    return Trained(model, with_decision(probabilities, classes, target, folds, candidate.decision))


def fitted_on(model: Model, features: pd.DataFrame, target: pd.Series) -> Model:
    """A fresh copy of the model fitted on the rows."""
    return clone(model).fit(features, target)


def decided(classifier: Any, decision: str, held_out: np.ndarray, target: pd.Series) -> Any:
    """A fitted classifier wrapped in its decision step, weights learnt on held-out rows."""
    if decision == "most_probable":
        return classifier
    return MacroF1Decision(clone(classifier)).around_fitted(classifier, held_out, target)


def candidate_result(
    name: str, trained: Trained, split: Split, folds: Folds, categories: list[str]
) -> CandidateResult:
    """A candidate's scores on both views: CV of the training part, and the test part once."""
    cv = cross_validated_scores(trained.held_out, split.train_target, folds)
    test = scores_on_views(trained.model, split.test_features, split.test_target, categories)
    return CandidateResult(
        name,
        {
            view: ViewScores(cv[view][0], cv[view][1], test[view][0], test[view][1])
            for view in VIEWS
        },
    )
