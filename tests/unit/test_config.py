from pathlib import Path

import pytest
import yaml

from mlops_lab.config import ConfigError, load_config


def write_config(tmp_path: Path, project_root: Path, change) -> Path:
    raw = yaml.safe_load((project_root / "config.yaml").read_text())
    change(raw)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
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
        del raw["training"]["candidates"]["notebook_random_forest"]

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

    with pytest.raises(ConfigError) as raised:
        load_config(write_config(tmp_path, project_root, break_it))
    message = str(raised.value)
    assert "training.cv_folds: Input should be a valid integer" in message
    assert "training.typo_key: Extra inputs are not permitted" in message


def test_tune_finds_a_study_by_candidate_or_takes_the_first(lab_config):
    tuning = lab_config.tuning
    assert tuning.study_for(None) == next(iter(tuning.studies.items()))
    candidate, study = tuning.study_for("random_forest_all_features")
    assert (candidate, study.study_name) == ("random_forest_all_features", "random-forest-1")
    with pytest.raises(ConfigError, match=r"no study in tuning.studies for 'lasso'; there are"):
        tuning.study_for("lasso")


def test_a_missing_tuned_params_file_stops_training_but_not_the_tuner(tmp_path, project_root):
    def unwritten(raw):
        for candidate in raw["training"]["candidates"].values():
            if candidate.get("tuned_params_path"):
                candidate["tuned_params_path"] = str(tmp_path / "not-yet.yaml")

    path = write_config(tmp_path, project_root, unwritten)
    with pytest.raises(ConfigError, match=r"run `mlops-lab tune` to write them"):
        load_config(path)
    assert load_config(path, tuned_params=False).tuning.studies


def member_settings(lab_config, ensemble: str, member: str) -> tuple[list[str], dict, dict]:
    """An ensemble's member names, the settings it holds for one of them, and that member's
    own parameters as a candidate of the shipped config."""
    candidates = {candidate.name: candidate for candidate in lab_config.training.candidates}
    members = candidates[ensemble].params["members"]
    return list(members), members[member], candidates[member].params


def test_a_soft_vote_takes_its_members_tuned_params(lab_config):
    names, forest, own_params = member_settings(lab_config, "tuned_blend", "tuned_random_forest")
    assert names == ["tuned_gradient_boosting", "tuned_random_forest"]
    assert forest == {"estimator": "random_forest", "params": own_params}
    # Read from params/tuned_random_forest.yaml: config.yaml itself never sets it.
    assert "max_features" in forest["params"]


def vote(raw, members, **extra):
    raw["training"]["candidates"]["vote"] = {
        "estimator": "soft_vote",
        "features": "all",
        "members": members,
        **extra,
    }


@pytest.mark.parametrize(
    ("members", "extra", "message"),
    [
        (["gradient_boosting", "ridge"], {}, "member 'ridge' is not among"),
        (["gradient_boosting", "notebook_random_forest"], {}, "member 'notebook_random_forest'"),
        (["gradient_boosting"], {}, "two or more distinct members"),
        (["gradient_boosting", "tuned_blend"], {}, "is itself a soft_vote"),
        (["gradient_boosting", "tuned_random_forest"], {"params": {"n_jobs": 1}}, "give none"),
    ],
)
def test_a_bad_soft_vote_is_named(tmp_path, project_root, members, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write_config(tmp_path, project_root, lambda raw: vote(raw, members, **extra)))


def test_members_belong_to_soft_votes_only(tmp_path, project_root):
    def give_members(raw):
        raw["training"]["candidates"]["random_forest_all_features"]["members"] = [
            "gradient_boosting"
        ]

    with pytest.raises(ConfigError, match="members are for soft_vote or field_router"):
        load_config(write_config(tmp_path, project_root, give_members))


def router(raw, members, **extra):
    raw["training"]["candidates"]["router"] = {
        "estimator": "field_router",
        "members": members,
        **extra,
    }


@pytest.mark.parametrize(
    ("members", "extra", "message"),
    [
        (["tuned_blend", "ridge"], {}, "member 'ridge' is not among"),
        (["tuned_blend", "routed_blend"], {}, "is itself a field_router"),
        (["required_fields_blend", "tuned_blend"], {}, "may need only the API's required fields"),
        (["tuned_blend", "required_fields_blend"], {"features": "all"}, "takes its members'"),
        (["tuned_blend", "required_fields_blend"], {"decision": "macro_f1"}, "takes its members'"),
    ],
)
def test_a_bad_field_router_is_named(tmp_path, project_root, members, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write_config(tmp_path, project_root, lambda raw: router(raw, members, **extra)))


def test_members_are_listed_before_their_ensemble(tmp_path, project_root):
    def vote_first(raw):
        candidates = raw["training"]["candidates"]
        raw["training"]["candidates"] = {"tuned_blend": candidates.pop("tuned_blend"), **candidates}

    with pytest.raises(ConfigError, match="member 'tuned_gradient_boosting' must be listed before"):
        load_config(write_config(tmp_path, project_root, vote_first))


def test_a_router_takes_its_members_whole_settings(lab_config):
    names, blend, own_params = member_settings(lab_config, "routed_blend", "required_fields_blend")
    assert names == ["tuned_blend", "required_fields_blend"]
    assert blend == {
        "estimator": "soft_vote",
        "params": own_params,
        "features": "required",
        "decision": "macro_f1",
    }


def test_unknown_feature_names_fail_when_the_config_is_read(tmp_path, project_root):
    def misspell(raw):
        raw["training"]["candidates"]["notebook_random_forest"]["features"] = [
            "borough",
            "acommodates",
        ]

    with pytest.raises(ConfigError, match=r"unknown features \['acommodates'\]"):
        load_config(write_config(tmp_path, project_root, misspell))


@pytest.mark.parametrize(
    ("weights", "message"),
    [({"required": 0, "full": 0}, "not all zero"), ({"everything": 1}, "required")],
)
def test_selection_weights_name_known_views(tmp_path, project_root, weights, message):
    def weigh(raw):
        raw["training"]["selection"]["view_weights"] = weights

    with pytest.raises(ConfigError, match=message):
        load_config(write_config(tmp_path, project_root, weigh))


def test_bin_edges_must_be_strictly_increasing(tmp_path, project_root):
    def repeat_edge(raw):
        raw["data_prep"]["price_bin_edges"] = [10, 90, 90, 400]

    with pytest.raises(ConfigError, match="strictly increasing, got"):
        load_config(write_config(tmp_path, project_root, repeat_edge))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_estimator": 100}, "unexpected keyword argument 'n_estimator'"),
        ({"max_depth": "deep"}, "The 'max_depth' parameter of RandomForestClassifier"),
    ],
)
def test_estimator_parameters_are_checked_when_the_config_is_read(
    tmp_path, project_root, params, message
):
    def break_forest(raw):
        raw["training"]["candidates"]["random_forest_all_features"]["params"].update(params)

    with pytest.raises(ConfigError, match=f"random_forest_all_features: .*{message}"):
        load_config(write_config(tmp_path, project_root, break_forest))


def test_a_bad_candidate_is_named_by_its_key(tmp_path, project_root):
    def misname(raw):
        raw["training"]["candidates"]["gradient_boosting"]["estimator"] = "lasso"

    with pytest.raises(ConfigError, match=r"training\.candidates\.gradient_boosting\.estimator"):
        load_config(write_config(tmp_path, project_root, misname))


def test_candidates_given_as_a_list_are_refused_with_the_form_to_use(tmp_path, project_root):
    def as_list(raw):
        candidates = raw["training"]["candidates"]
        raw["training"]["candidates"] = [{"name": name, **c} for name, c in candidates.items()]

    with pytest.raises(ConfigError, match="a mapping of each candidate's name to its settings"):
        load_config(write_config(tmp_path, project_root, as_list))
