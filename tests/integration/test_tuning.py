"""`mlops-lab tune` workers sharing one Optuna study on a real PostgreSQL, tracked on a real
mlflow server: the budget is spent once, a killed worker's trial fails, a new worker joins."""

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow import MlflowClient
from waiting import poll_until

pytestmark = pytest.mark.integration

VENV_BIN = Path(sys.executable).parent
BUDGET = 6
STUDY = "shared-study"


def small_tuning(config: dict) -> None:
    config["tuning"].update({"trials": BUDGET, "cv_folds": 2, "heartbeat_seconds": 1})
    first = next(iter(config["tuning"]["studies"]))
    config["tuning"]["studies"][first]["study_name"] = STUDY


@pytest.fixture()
def tuning_lab(small_project, mlflow_server, postgres_uri):
    small_project.edit_config(small_tuning)
    small_project.commit("small tuning")
    environment = {
        "MLFLOW_TRACKING_URI": mlflow_server["uri"],
        # The optuna database of the same PostgreSQL, under the same login.
        "OPTUNA_STORAGE": postgres_uri.rsplit("/", 1)[0] + "/optuna",
    }
    prepared = small_project.run(["mlops-lab", "data-prep"], environment)
    assert prepared.returncode == 0, prepared.stderr
    storage = environment["OPTUNA_STORAGE"]
    # Each test its own study, in the one database.
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=STUDY, storage=storage)
    return small_project, environment


def worker(lab, environment) -> subprocess.Popen:
    """One tune worker limited to one thread, as on a shared machine."""
    return subprocess.Popen(
        [str(VENV_BIN / "mlops-lab"), "tune"],
        cwd=lab.path,
        env={**os.environ, **environment, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def trials(environment) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=STUDY, storage=environment["OPTUNA_STORAGE"]).trials


def test_two_workers_spend_one_budget_without_duplicates(tuning_lab, mlflow_server):
    lab, environment = tuning_lab
    workers = [worker(lab, environment) for _ in range(2)]
    logs = [process.communicate(timeout=600) for process in workers]
    assert [process.returncode for process in workers] == [0, 0], logs
    done = trials(environment)
    numbers = sorted(trial.number for trial in done)
    assert numbers == list(range(len(done)))
    assert BUDGET <= len(done) <= BUDGET + 1
    states = {trial.state for trial in done}
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    # Both workers did part of the work.
    for _, stderr in logs:
        assert "trial " in stderr and " finished or running" in stderr
    params = [tuple(sorted(trial.params.items())) for trial in done]
    assert len(set(params)) == len(params)
    tuned = yaml.safe_load((lab.path / "params" / "tuned_gradient_boosting.yaml").read_text())
    best = optuna.load_study(study_name=STUDY, storage=environment["OPTUNA_STORAGE"]).best_trial
    assert tuned["params"] == best.params
    # Each worker waited for the other's last trial, so both logged the study's final best.
    finals = {stderr.strip().splitlines()[-1].split(" best ", 1)[1] for _, stderr in logs}
    assert len(finals) == 1, finals
    client = MlflowClient(mlflow_server["uri"])
    experiment = client.get_experiment_by_name("airbnb-price-category")
    trial_runs = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`mlops_lab.study` = '" + STUDY + "'"
    )
    assert len([run for run in trial_runs if run.info.run_name.startswith("trial-")]) == len(done)


def test_a_killed_worker_leaves_the_study_usable(tuning_lab):
    lab, environment = tuning_lab
    first, second = worker(lab, environment), worker(lab, environment)
    poll_until(
        lambda: len(in_state(environment, optuna.trial.TrialState.RUNNING)) == 2,
        300,
        "the two workers to run trials at the same time",
    )
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    # The survivor goes on, and fails the dead worker's trial once its heartbeat is stale (a
    # worker fails stale trials before each trial, and while it waits for the others' last).
    poll_until(
        lambda: in_state(environment, optuna.trial.TrialState.FAIL),
        120,
        "the killed worker's trial to be failed as stale",
    )
    # A worker restarted after that joins.
    restarted = worker(lab, environment)
    for process in (second, restarted):
        _stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
    done = trials(environment)
    failed = [trial for trial in done if trial.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 1
    finished = [
        trial
        for trial in done
        if trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    ]
    assert len(finished) >= BUDGET
    assert not [trial for trial in done if trial.state == optuna.trial.TrialState.RUNNING]


def in_state(environment, state: optuna.trial.TrialState) -> list[optuna.trial.FrozenTrial]:
    """The study's trials in one state (none before the first worker has created the study)."""
    try:
        return [trial for trial in trials(environment) if trial.state == state]
    except KeyError:
        return []
