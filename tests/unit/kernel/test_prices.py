import math

import pandas as pd
import pytest

from mlops_lab.kernel.prices import price_category

EDGES = [10, 90, 180, 400]
CATEGORIES = ["low", "mid", "high", "lux"]


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (10.0, None),
        (10.01, "low"),
        (90.0, "low"),
        (90.01, "mid"),
        (180.0, "mid"),
        (400.0, "high"),
        (400.01, "lux"),
        (12500.0, "lux"),
        (math.nan, None),
    ],
)
def test_price_category_uses_right_closed_bins(price, expected):
    category = price_category(pd.Series([price]), EDGES, CATEGORIES).iloc[0]
    if expected is None:
        assert pd.isna(category)
    else:
        assert category == expected
