"""The model's feature steps: API-level listing fields in, model features out."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from mlops_lab.kernel.listing import (
    AMENITY_FLAGS,
    BOROUGH_ALIAS,
    CATEGORICAL_FIELDS,
    MODEL_INPUT_FIELDS,
    NUMERIC_FIELDS,
    REQUIRED_FIELDS,
)

# Times Square: the centre of NYC's short-let demand.
MIDTOWN_LATITUDE = 40.7580
MIDTOWN_LONGITUDE = -73.9855
EARTH_RADIUS_KM = 6371.0
KM_PER_DEGREE_LATITUDE = 111.2
# Trees split along one axis at a time; positions along these bearings (degrees anticlockwise
# from east, with latitude and longitude as 90 and 0) let them cut along Manhattan's tilted
# grid and the rivers too. Measured: CV ROC AUC +0.0014 (3 folds, tuned gradient boosting).
PROJECTION_BEARINGS = (30, 60, 120, 150)

# Building kinds that Inside Airbnb's property_type text names after "Entire", "Private room in"…
PROPERTY_GROUPS = {
    "rental unit": "apartment",
    "serviced apartment": "apartment",
    "condominium": "condominium",
    "condo": "condominium",
    "loft": "loft",
    "townhouse": "house",
    "residential home": "house",
    "home": "house",
    "house": "house",
    "villa": "house",
    "guest suite": "guest_suite",
    "guesthouse": "guest_suite",
    "bed and breakfast": "bed_and_breakfast",
    "hotel": "hotel",
    "boutique hotel": "hotel",
    "aparthotel": "hotel",
    "hostel": "hostel",
}
_PROPERTY_PREFIX = re.compile(
    r"^(entire|private room in|shared room in|room in|shared room|private room)\s*"
)

CATEGORICAL_FEATURES = ("borough", "room_type", "property_group")
PROJECTION_FEATURES = tuple(
    f"position_along_{bearing}_degrees_km" for bearing in PROJECTION_BEARINGS
)
DERIVED_FEATURES = (
    "distance_to_midtown_km",
    *PROJECTION_FEATURES,
    "people_per_bedroom",
    "people_per_bed",
    "bathrooms_per_person",
)
NUMERIC_FEATURES = NUMERIC_FIELDS + DERIVED_FEATURES
ALL_FEATURES = CATEGORICAL_FEATURES + NUMERIC_FEATURES

# The listing fields each feature is computed from: a model needs all of its features' fields.
FEATURE_INPUTS: dict[str, tuple[str, ...]] = {
    "borough": ("borough",),
    "room_type": ("room_type",),
    "property_group": ("property_type",),
    **{name: (name,) for name in NUMERIC_FIELDS},
    "distance_to_midtown_km": ("latitude", "longitude"),
    **{name: ("latitude", "longitude") for name in PROJECTION_FEATURES},
    "people_per_bedroom": ("accommodates", "bedrooms"),
    "people_per_bed": ("accommodates", "beds"),
    "bathrooms_per_person": ("bathrooms", "accommodates"),
}
# Every feature the API's required fields give, so a model on these never lacks an input.
REQUIRED_FEATURES = tuple(
    name for name in ALL_FEATURES if set(FEATURE_INPUTS[name]) <= set(REQUIRED_FIELDS)
)

# What `mlops-lab ablate` removes one at a time: every feature is in exactly one group.
FEATURE_GROUPS = {
    "borough": ("borough",),
    "room_type": ("room_type",),
    "property_group": ("property_group",),
    "size": ("accommodates", "bathrooms", "shared_bathroom", "bedrooms", "beds"),
    "ratios": ("people_per_bedroom", "people_per_bed", "bathrooms_per_person"),
    "coordinates": ("latitude", "longitude"),
    "distance_to_midtown": ("distance_to_midtown_km",),
    "location_projections": PROJECTION_FEATURES,
    "amenities": (*AMENITY_FLAGS, "amenity_count"),
}


def property_group(property_type: object) -> str:
    """The building kind of an Inside Airbnb property_type text, or 'other'."""
    if not isinstance(property_type, str) or not property_type.strip():
        return "missing"
    kind = _PROPERTY_PREFIX.sub("", property_type.strip().lower())
    kind = re.sub(r"\s*\(.*\)$", "", kind)
    return PROPERTY_GROUPS.get(kind, "other")


# The model's input fields as arrays, one per field name: categorical fields as objects (None
# when missing), numeric fields as float64 (NaN when missing). Both the pandas path (training,
# the logged Pipeline) and the serving fast path go through `engineer_features` on these, so
# they compute every feature with the same operations and agree to the last bit.
Columns = dict[str, np.ndarray]


def distance_to_midtown_km(latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    """Great-circle distance in km from each point to Times Square."""
    lat1, lon1 = np.radians(latitude), np.radians(longitude)
    lat2, lon2 = np.radians(MIDTOWN_LATITUDE), np.radians(MIDTOWN_LONGITUDE)
    haversine = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(haversine))


def positions_along_bearings(latitude: np.ndarray, longitude: np.ndarray) -> Columns:
    """Each point's signed distance in km from Times Square along each projection bearing."""
    north_km = (latitude - MIDTOWN_LATITUDE) * KM_PER_DEGREE_LATITUDE
    east_km = (
        (longitude - MIDTOWN_LONGITUDE)
        * KM_PER_DEGREE_LATITUDE
        * np.cos(np.radians(MIDTOWN_LATITUDE))
    )
    return {
        name: east_km * np.cos(np.radians(bearing)) + north_km * np.sin(np.radians(bearing))
        for name, bearing in zip(PROJECTION_FEATURES, PROJECTION_BEARINGS, strict=True)
    }


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is missing or not positive."""
    return numerator / np.where(denominator > 0, denominator, np.nan)


def _category_text(values: np.ndarray) -> np.ndarray:
    """Categorical values as text, 'missing' where absent."""
    return np.array(["missing" if value is None else str(value) for value in values], dtype=object)


def conform_listings(listings: pd.DataFrame) -> Columns:
    """The model's input fields from whatever a caller sent: unreadable or absent as missing."""
    columns: Columns = {}
    for field in MODEL_INPUT_FIELDS:
        source = field
        if field == "borough" and field not in listings.columns:
            source = BOROUGH_ALIAS
        if source not in listings.columns:
            values = pd.Series(np.nan, index=listings.index, dtype=object)
        else:
            values = listings[source]
        if field in CATEGORICAL_FIELDS:
            columns[field] = values.astype(object).where(values.notna(), None).to_numpy()
        else:
            numbers = pd.to_numeric(values, errors="coerce").astype(float)
            columns[field] = numbers.to_numpy(dtype=float, na_value=np.nan)
    return columns


def conform_records(records: list[dict[str, Any]]) -> Columns:
    """The model's input fields from listing dicts that passed the API schema."""
    columns: Columns = {}
    for field in CATEGORICAL_FIELDS:
        values = [record.get(field) for record in records]
        # NaN (a value != itself) is missing too, as in a frame's records.
        columns[field] = np.array(
            [None if value is None or value != value else value for value in values],
            dtype=object,
        )
    for field in NUMERIC_FIELDS:
        columns[field] = np.array([record.get(field, np.nan) for record in records], dtype=float)
    return columns


def engineer_features(listings: Columns) -> Columns:
    """Every model feature, by name, from the model's input fields."""
    features = {name: listings[name] for name in NUMERIC_FIELDS}
    features["borough"] = _category_text(listings["borough"])
    features["room_type"] = _category_text(listings["room_type"])
    features["property_group"] = np.array(
        [property_group(value) for value in listings["property_type"]], dtype=object
    )
    features["distance_to_midtown_km"] = distance_to_midtown_km(
        listings["latitude"], listings["longitude"]
    )
    features.update(positions_along_bearings(listings["latitude"], listings["longitude"]))
    features["people_per_bedroom"] = _ratio(listings["accommodates"], listings["bedrooms"])
    features["people_per_bed"] = _ratio(listings["accommodates"], listings["beds"])
    features["bathrooms_per_person"] = _ratio(listings["bathrooms"], listings["accommodates"])
    return {name: features[name] for name in ALL_FEATURES}


class ListingFeatures(TransformerMixin, BaseEstimator):
    """Turns API-level listing fields into the named model features (all of them by default)."""

    def __init__(self, features: tuple[str, ...] = ALL_FEATURES):
        self.features = features

    def fit(self, listings: pd.DataFrame, price_category: Any = None) -> ListingFeatures:
        unknown = sorted(set(self.features) - set(ALL_FEATURES))
        if unknown:
            raise ValueError(f"unknown features {unknown}; known: {list(ALL_FEATURES)}")
        return self

    def transform(self, listings: pd.DataFrame) -> pd.DataFrame:
        features = engineer_features(conform_listings(listings))
        return pd.DataFrame({name: features[name] for name in self.features}, index=listings.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.features, dtype=object)


def resolve_features(features: list[str] | str) -> tuple[str, ...]:
    """The feature names a candidate asks for: 'all', 'required' (what the API's required
    fields give) or a list of names."""
    if features == "all":
        return ALL_FEATURES
    if features == "required":
        return REQUIRED_FEATURES
    return tuple(features)


def input_fields(features: tuple[str, ...]) -> tuple[str, ...]:
    """The listing fields the features are computed from, in the model's input order."""
    needed = {field for name in features for field in FEATURE_INPUTS[name]}
    return tuple(field for field in MODEL_INPUT_FIELDS if field in needed)


def present_fields(listings: Columns) -> dict[str, np.ndarray]:
    """Per input field, which listings carry a value for it."""
    return {
        field: (
            np.array([value is not None for value in values], dtype=bool)
            if field in CATEGORICAL_FIELDS
            else ~np.isnan(values)
        )
        for field, values in listings.items()
    }
