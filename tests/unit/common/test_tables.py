import numpy as np
import pandas as pd

from mlops_lab.common.tables import read_parquet


def test_a_table_reads_back_as_pandas_reads_it(tmp_path):
    path = tmp_path / "listings.parquet"
    table = pd.DataFrame(
        {
            "id": np.array([1, 2, 3], dtype="int64"),
            "borough": ["Manhattan", None, "Brooklyn"],
            "price": [90.0, np.nan, 400.0],
            "price_category": pd.Categorical(["low", "mid", "high"]),
            "last_review": pd.to_datetime(["2024-01-01", None, "2024-03-01"]),
        }
    )
    table.to_parquet(path, index=False)
    read = read_parquet(path)
    pd.testing.assert_frame_equal(read, pd.read_parquet(path))
    pd.testing.assert_frame_equal(read, table)
