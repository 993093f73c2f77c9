"""Pure functions of the hyperparameter search: what to try and what the study found."""

from __future__ import annotations

from typing import Any

import optuna

from mlops_lab.config import SearchDimension


def suggest_params(trial: optuna.Trial, space: dict[str, SearchDimension]) -> dict[str, Any]:
    """One value per searched parameter, drawn by the study's sampler."""
    params: dict[str, Any] = {}
    for name, dimension in space.items():
        if dimension.integer:
            params[name] = trial.suggest_int(
                name, int(dimension.low), int(dimension.high), log=dimension.log
            )
        else:
            params[name] = trial.suggest_float(
                name, dimension.low, dimension.high, log=dimension.log
            )
    return params


# Trials that spend the budget. A failed trial (its worker died) does not: another replaces it.
BUDGET_STATES = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.RUNNING,
)


def budget_spent(study: optuna.Study) -> int:
    """Trials finished or under way that count against the study's budget."""
    return len(study.get_trials(deepcopy=False, states=BUDGET_STATES))


def tuned_params_document(study: optuna.Study, metric: str, folds: int) -> dict[str, Any]:
    """What training reads from the tuned-parameters file, with where it came from."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    best = study.best_trial
    return {
        "study": study.study_name,
        "complete_trials": len(complete),
        "best_trial": best.number,
        f"cv_{metric}": round(float(best.value), 6),
        "cv_folds": folds,
        "params": dict(best.params),
    }
