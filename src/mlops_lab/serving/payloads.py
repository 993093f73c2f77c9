"""A table of listings as the JSON objects callers send the API."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def payloads(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Each row as the JSON object a caller would send: empty cells left out, numbers as
    Python's own (a JSON encoder refuses numpy's)."""
    rows = frame.astype(object).to_dict("records")
    return [
        {
            name: value.item() if hasattr(value, "item") else value
            for name, value in row.items()
            if value is not None and not (isinstance(value, float) and math.isnan(value))
        }
        for row in rows
    ]
