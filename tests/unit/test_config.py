from pathlib import Path

import pytest
import yaml

from mlops_lab.config import ConfigError, load_config


def write_config(tmp_path: Path, project_root: Path, change) -> Path:
    raw = yaml.safe_load((project_root / "config.yaml").read_text())
    change(raw)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_shipped_config_is_valid(lab_config):
    assert lab_config.training.reference_candidate in [
        c.name for c in lab_config.training.candidates
    ]
    assert lab_config.data_prep.price_bin_edges == [10, 90, 180, 400]


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"nowhere\.yaml"):
        load_config(tmp_path / "nowhere.yaml")


def test_reference_candidate_must_be_trained(tmp_path, project_root):
    def drop_reference(raw):
        raw["training"]["candidates"] = raw["training"]["candidates"][1:]

    with pytest.raises(ConfigError, match="reference_candidate"):
        load_config(write_config(tmp_path, project_root, drop_reference))


def test_one_category_per_bin(tmp_path, project_root):
    def drop_category(raw):
        raw["data_prep"]["price_categories"] = ["low", "mid", "high"]

    with pytest.raises(ConfigError, match="one name per bin"):
        load_config(write_config(tmp_path, project_root, drop_category))


def test_unknown_keys_and_wrong_types_name_the_field(tmp_path, project_root):
    def break_it(raw):
        raw["training"]["cv_folds"] = "five"
        raw["training"]["typo_key"] = 1

    with pytest.raises(ConfigError, match=r"training\.cv_folds.*training\.typo_key|typo_key"):
        load_config(write_config(tmp_path, project_root, break_it))


def test_tune_finds_a_study_by_candidate_or_takes_the_first(lab_config):
    tuning = lab_config.tuning
    assert tuning.study_for(None) == tuning.studies[0]
    assert tuning.study_for("random_forest_all_features").study_name == "random-forest-1"
    with pytest.raises(ConfigError, match=r"no study in tuning.studies for 'lasso'; there are"):
        tuning.study_for("lasso")


def test_each_candidate_has_one_study(tmp_path, project_root):
    def repeat_study(raw):
        raw["tuning"]["studies"].append(raw["tuning"]["studies"][0])

    with pytest.raises(ConfigError, match="each candidate can have one study"):
        load_config(write_config(tmp_path, project_root, repeat_study))


def test_a_missing_tuned_params_file_stops_training_but_not_the_tuner(tmp_path, project_root):
    def unwritten(raw):
        for candidate in raw["training"]["candidates"]:
            if candidate.get("tuned_params_path"):
                candidate["tuned_params_path"] = str(tmp_path / "not-yet.yaml")

    path = write_config(tmp_path, project_root, unwritten)
    with pytest.raises(ConfigError, match=r"run `mlops-lab tune` to write them"):
        load_config(path)
    assert load_config(path, tuned_params=False).tuning.studies


def test_a_soft_vote_takes_its_members_tuned_params(lab_config):
    candidates = {candidate.name: candidate for candidate in lab_config.training.candidates}
    members = candidates["tuned_blend"].params["members"]
    assert list(members) == ["tuned_gradient_boosting", "tuned_random_forest"]
    assert members["tuned_random_forest"] == {
        "estimator": "random_forest",
        "params": candidates["tuned_random_forest"].params,
    }
    assert "max_features" in members["tuned_random_forest"]["params"]


def vote(raw, members, **extra):
    raw["training"]["candidates"].append(
        {"name": "vote", "estimator": "soft_vote", "features": "all", "members": members, **extra}
    )


@pytest.mark.parametrize(
    ("members", "extra", "message"),
    [
        (["gradient_boosting", "ridge"], {}, "member 'ridge' is not among"),
        (["gradient_boosting", "notebook_random_forest"], {}, "member 'notebook_random_forest'"),
        (["gradient_boosting"], {}, "two or more distinct members"),
        (["gradient_boosting", "tuned_blend"], {}, "is itself a soft_vote"),
        (["gradient_boosting", "tuned_random_forest"], {"params": {"n_jobs": 1}}, "no params"),
    ],
)
def test_a_bad_soft_vote_is_named(tmp_path, project_root, members, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write_config(tmp_path, project_root, lambda raw: vote(raw, members, **extra)))


def test_members_belong_to_soft_votes_only(tmp_path, project_root):
    def give_members(raw):
        raw["training"]["candidates"][1]["members"] = ["gradient_boosting"]

    with pytest.raises(ConfigError, match="members are for estimator soft_vote"):
        load_config(write_config(tmp_path, project_root, give_members))
