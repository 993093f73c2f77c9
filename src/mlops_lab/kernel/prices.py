"""Prices and their categories: the one rule that turns a nightly price into a price category."""

from __future__ import annotations

import math

import pandas as pd


def price_category(prices: pd.Series, edges: list[float], categories: list[str]) -> pd.Series:
    """Each price's category in right-closed bins (edge, next edge]; missing at/below edges[0]."""
    bins = [*edges, math.inf]
    return pd.cut(prices, bins=bins, labels=categories, right=True).astype(object)
