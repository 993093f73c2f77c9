import sys
from pathlib import Path

import pandas as pd
import pytest

from mlops_lab.config import LabConfig, load_config
from mlops_lab.kernel.inside_airbnb import read_raw_listings
from mlops_lab.stages.data_prep.transform import prepare_listings, sample_listings

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def restored_import_path():
    """sys.path as each test found it: loading a logged model in a test puts the model's copy
    of the kernel first (MLflow's code_paths), which would break later tests' subprocesses."""
    path = list(sys.path)
    yield
    sys.path = path


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def lab_config() -> LabConfig:
    return load_config(PROJECT_ROOT / "config.yaml")


@pytest.fixture(scope="session")
def prepared_listings(lab_config: LabConfig) -> pd.DataFrame:
    """The shipped listings, prepared as the pipeline does."""
    raw = read_raw_listings(PROJECT_ROOT / lab_config.data.raw_path)
    prepared, _ = prepare_listings(
        raw, lab_config.data_prep.price_bin_edges, lab_config.data_prep.price_categories
    )
    return prepared


@pytest.fixture(scope="session")
def listing_sample(prepared_listings: pd.DataFrame) -> pd.DataFrame:
    """2,000 prepared listings: enough to fit small models in a second."""
    return sample_listings(prepared_listings, 2000, seed=7)


@pytest.fixture()
def challenge_payload() -> dict:
    return dict(load_config(PROJECT_ROOT / "config.yaml").prediction_app.challenge_payload)
