"""The prepared table and the notebook's split of it: what training, promotion, tuning and
ablation all score on."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import train_test_split

from mlops_lab.common.errors import UserError
from mlops_lab.config import LabConfig
from mlops_lab.kernel.listing import MODEL_INPUT_FIELDS

TARGET = "price_category"


class PreparedTableMissing(UserError, FileNotFoundError):
    """The prepared table a command needs has not been made yet."""


@dataclass(frozen=True)
class Split:
    train_features: pd.DataFrame
    test_features: pd.DataFrame
    train_target: pd.Series
    test_target: pd.Series


def split_like_notebook(listings: pd.DataFrame, test_size: float, random_state: int) -> Split:
    """The notebook's train_test_split (not stratified) over model inputs and price_category."""
    features = listings[["id", *MODEL_INPUT_FIELDS]]
    train_x, test_x, train_y, test_y = train_test_split(
        features, listings[TARGET], test_size=test_size, random_state=random_state
    )
    return Split(train_x, test_x, train_y, test_y)


def read_split(config: LabConfig, purpose: str) -> Split:
    """The notebook's split of the prepared listings; PreparedTableMissing if there are none."""
    prepared_path = config.data.prepared_path
    if not prepared_path.is_file():
        raise PreparedTableMissing(
            f"{prepared_path} does not exist: run `dvc repro data_prep` before {purpose}"
        )
    return split_like_notebook(
        pd.read_parquet(prepared_path),
        config.training.test_size,
        config.training.split_random_state,
    )
