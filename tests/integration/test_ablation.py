"""`mlops-lab ablate` on a small lab, tracked on a real mlflow server: one run per removed
feature group, and the table as a file and an MLflow artifact."""

import pandas as pd
import pytest
from mlflow import MlflowClient

from mlops_lab.kernel.features import FEATURE_GROUPS
from mlops_lab.stages.ablate.transform import NOTHING_REMOVED

pytestmark = pytest.mark.integration


def small_ablation(config: dict) -> None:
    config["ablation"]["cv_folds"] = 2
    # One small model, not the champion's two: the test is about the command, not the numbers.
    config["ablation"]["candidate"] = "gradient_boosting"
    config["training"]["candidates"]["gradient_boosting"]["params"]["max_iter"] = 30


def test_ablate_scores_each_feature_group_removed_and_logs_the_table(small_project, mlflow_server):
    small_project.edit_config(small_ablation)
    small_project.commit("small ablation")
    environment = {"MLFLOW_TRACKING_URI": mlflow_server["uri"]}
    missing = small_project.run(["mlops-lab", "ablate"], environment)
    assert missing.returncode != 0
    assert "run `dvc repro data_prep` before ablating" in missing.stderr
    assert "Traceback" not in missing.stderr

    assert small_project.run(["mlops-lab", "data-prep"], environment).returncode == 0
    result = small_project.run(["mlops-lab", "ablate"], environment)
    assert result.returncode == 0, result.stderr

    table = pd.read_csv(small_project.path / "metrics/ablation.csv")
    assert table["removed"].tolist()[0] == NOTHING_REMOVED
    assert sorted(table["removed"].tolist()[1:]) == sorted(FEATURE_GROUPS)
    assert (small_project.path / "reports/ablation.png").stat().st_size > 0
    assert f"[1/{len(table)}] {NOTHING_REMOVED}" in result.stderr
    assert f"[{len(table)}/{len(table)}] without" in result.stderr

    client = MlflowClient(mlflow_server["uri"])
    experiment = client.get_experiment_by_name("airbnb-price-category")
    [run] = client.search_runs([experiment.experiment_id], "tags.`mlops_lab.stage` = 'ablation'")
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "ablation")}
    assert artifacts == {"ablation/ablation.csv", "ablation/ablation.png"}
    children = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    assert len(children) == len(table)

    # Each row's score is the one its child run logged, and its change is that score less the
    # score with every feature (the table rounds to 6 decimals).
    logged = {child.data.params["removed"]: child.data.metrics for child in children}
    assert set(logged) == set(table["removed"])
    full = logged[NOTHING_REMOVED]["cv_roc_auc_ovr"]
    assert run.data.metrics["cv_roc_auc_ovr"] == pytest.approx(full, abs=1e-6)
    for row in table.itertuples():
        score = logged[row.removed]["cv_roc_auc_ovr"]
        assert row.cv_roc_auc_ovr == pytest.approx(score, abs=1e-6), row.removed
        assert row.roc_auc_ovr_change == pytest.approx(score - full, abs=2e-6), row.removed
    # Each child run scored the candidate without its group's features, and only those.
    kept = {child.data.params["removed"]: child.data.params["features"] for child in children}
    everything = set(kept[NOTHING_REMOVED].split(","))
    for group, members in FEATURE_GROUPS.items():
        assert set(kept[group].split(",")) == everything - set(members), group


def test_ablate_names_an_unknown_candidate(small_project):
    def unknown(config: dict) -> None:
        config["ablation"]["candidate"] = "no_such_model"

    small_project.edit_config(unknown)
    result = small_project.run(["mlops-lab", "ablate"])
    assert result.returncode != 0
    assert "ablation.candidate 'no_such_model' is not among the training candidates" in (
        result.stderr
    )
