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
