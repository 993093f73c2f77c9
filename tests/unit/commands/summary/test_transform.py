from mlops_lab.commands.summary.transform import summary_lines

SCORES = {"roc_auc_ovr": 0.87104, "macro_f1": 0.62871, "accuracy": 0.69}
TRAINING = {"winner": "routed_blend", "required": {"test": SCORES}, "full": {"test": SCORES}}


def registration(champion: str, run: str, reason: str) -> dict:
    return {
        "model_name": "price",
        "champion": {"version": champion},
        "challenger": {"version": run, "promoted": champion == run, "reason": reason},
    }


def test_a_promoted_run_is_the_champion_with_its_scores_on_both_views():
    lines = summary_lines(TRAINING, registration("3", "3", "v3 becomes the champion"))
    assert lines[0] == "this run's model: routed_blend, registered as price v3"
    assert lines[1] == "  required  test ROC AUC 0.8710, macro F1 0.6287, accuracy 0.6900"
    assert lines[2].startswith("  full      test ROC AUC 0.8710")
    assert lines[3] == "v3 is the champion: the service and `make serve` serve it"
    assert lines[4] == "  promote: v3 becomes the champion"
    assert "dvc metrics show" in lines[-1]


def test_a_run_not_promoted_names_the_champion_that_still_serves():
    lines = summary_lines(TRAINING, registration("1", "2", "v2 is not promoted"))
    assert lines[3] == "the champion, which serves, is v1; v2 is not"
    assert lines[4] == "  promote: v2 is not promoted"
