"""The prepared table and the notebook's split of it: what training, promotion, tuning and
ablation all score on."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import train_test_split

from mlops_lab.common.errors import UserError
from mlops_lab.common.tables import read_parquet
from mlops_lab.config import LabConfig
from mlops_lab.kernel.listing import MODEL_INPUT_FIELDS

TARGET = "price_category"
# Where data_prep says each prepared listing came from: the raw file (its price perhaps
# replaced by feedback) or feedback alone (a listing the raw file does not have).
SOURCE = "source"
FROM_RAW = "raw"
FROM_RAW_PRICE_FROM_FEEDBACK = "raw_price_from_feedback"
FROM_FEEDBACK = "feedback"
# The columns of what `mlops-lab harvest` writes and data_prep adds: listings labelled by feedback.
HARVESTED_COLUMNS = ["id", *MODEL_INPUT_FIELDS, "price", TARGET]


class PreparedTableMissing(UserError, FileNotFoundError):
    """The prepared table a command needs has not been made yet."""


@dataclass(frozen=True)
class Split:
    train_features: pd.DataFrame
    test_features: pd.DataFrame
    train_target: pd.Series
    test_target: pd.Series
    # Which test listings came with feedback (a price from the service's traffic, or the
    # listing itself): the recent slice the promotion gate looks at too.
    test_from_traffic: pd.Series


def split_like_notebook(listings: pd.DataFrame, test_size: float, random_state: int) -> Split:
    """The notebook's train_test_split (not stratified) of the raw file's listings, and each
    listing known from feedback alone in the part its id gives: a listing's part never
    changes as the data grows."""
    features = ["id", *MODEL_INPUT_FIELDS]
    # A table without the column predates harvesting: every listing in it is the raw file's.
    source = listings.get(SOURCE, pd.Series(FROM_RAW, index=listings.index))
    from_feedback, from_traffic = source.eq(FROM_FEEDBACK), source.ne(FROM_RAW)
    shipped, added = listings[~from_feedback], listings[from_feedback]
    train_x, test_x, train_y, test_y = train_test_split(
        shipped[features], shipped[TARGET], test_size=test_size, random_state=random_state
    )
    if added.empty:
        return Split(train_x, test_x, train_y, test_y, from_traffic.loc[test_x.index])
    in_test = added["id"].map(lambda listing_id: id_fraction(listing_id) < test_size).astype(bool)
    test_features = pd.concat([test_x, added.loc[in_test, features]])
    return Split(
        pd.concat([train_x, added.loc[~in_test, features]]),
        test_features,
        pd.concat([train_y, added.loc[~in_test, TARGET]]),
        pd.concat([test_y, added.loc[in_test, TARGET]]),
        from_traffic.loc[test_features.index],
    )


def id_fraction(listing_id: object) -> float:
    """A number in [0, 1) that depends on the listing's id alone, spread evenly."""
    digest = hashlib.sha256(str(listing_id).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def read_split(config: LabConfig, purpose: str) -> Split:
    """The notebook's split of the prepared listings; PreparedTableMissing if there are none."""
    prepared_path = config.data.prepared_path
    if not prepared_path.is_file():
        raise PreparedTableMissing(
            f"{prepared_path} does not exist: run `dvc repro data_prep` before {purpose}"
        )
    return split_like_notebook(
        read_parquet(prepared_path),
        config.training.test_size,
        config.training.split_random_state,
    )
