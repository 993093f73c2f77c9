import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from mlops_lab.config import SelectionConfig
from mlops_lab.kernel.features import ALL_FEATURES
from mlops_lab.kernel.modelling import build_model


@pytest.fixture(scope="session")
def split(listing_sample: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """1,500 listings to fit on, some fields missing, and 500 to predict."""
    train = listing_sample.iloc[:1500].copy()
    # Missing values in training give the trees missing-value branches to take.
    train.loc[train.index[::7], ["bedrooms", "beds"]] = np.nan
    train.loc[train.index[::11], "property_type"] = None
    return train, listing_sample.iloc[1500:]


@pytest.fixture(scope="session")
def boosted(split) -> Pipeline:
    """A small gradient boosting on every feature."""
    train, _ = split
    model = build_model("hist_gradient_boosting", ALL_FEATURES, {"max_iter": 40, "random_state": 0})
    return model.fit(train, train["price_category"])


@pytest.fixture(scope="session")
def categories() -> list[str]:
    """The four price categories, cheapest first, as config.yaml names them."""
    return ["low", "mid", "high", "lux"]


@pytest.fixture(scope="session")
def required_mostly() -> SelectionConfig:
    """Selection by ROC AUC, the required view weighing three times the full view."""
    return SelectionConfig(metric="roc_auc_ovr", view_weights={"required": 0.75, "full": 0.25})
