import pytest
from matplotlib.figure import Figure

from mlops_lab.stages.ablate.transform import (
    NOTHING_REMOVED,
    ablation_feature_sets,
    ablation_figure,
    ablation_table,
)

GROUPS = {"size": ("accommodates", "bedrooms"), "location": ("latitude",), "unused": ("tv",)}


def test_feature_sets_remove_each_group_the_candidate_uses():
    sets = ablation_feature_sets(("accommodates", "bedrooms", "latitude", "borough"), GROUPS)
    assert sets == {
        NOTHING_REMOVED: ("accommodates", "bedrooms", "latitude", "borough"),
        "size": ("latitude", "borough"),
        "location": ("accommodates", "bedrooms", "borough"),
    }


def test_feature_sets_never_remove_every_feature():
    assert list(ablation_feature_sets(("latitude",), GROUPS)) == [NOTHING_REMOVED]


def fold(auc: float, f1: float = 0.6, loss: float = 0.7) -> dict[str, float]:
    return {"roc_auc_ovr": auc, "macro_f1": f1, "log_loss": loss, "accuracy": 0.7}


def test_table_pairs_changes_fold_by_fold_and_puts_the_costliest_removal_first():
    scores = {
        NOTHING_REMOVED: [fold(0.88), fold(0.86)],
        "size": [fold(0.87), fold(0.85)],
        "location": [fold(0.80), fold(0.84)],
    }
    table = ablation_table(scores, {NOTHING_REMOVED: 4, "size": 2, "location": 3})
    assert table["removed"].tolist() == [NOTHING_REMOVED, "location", "size"]
    size = table.set_index("removed").loc["size"]
    # Both folds lose exactly 0.01: no spread, though the fold scores themselves differ.
    assert size["roc_auc_ovr_change"] == pytest.approx(-0.01)
    assert size["roc_auc_ovr_change_std"] == pytest.approx(0.0)
    location = table.set_index("removed").loc["location"]
    assert location["roc_auc_ovr_change"] == pytest.approx(-0.05)
    assert location["roc_auc_ovr_change_std"] == pytest.approx(0.03)
    assert isinstance(ablation_figure(table), Figure)
