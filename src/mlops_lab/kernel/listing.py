"""The listing contract: the fields the model takes, which callers must send, the values they
may take, and the two views every model is scored on."""

from __future__ import annotations

from typing import Literal, get_args

BOROUGHS = ("Bronx", "Brooklyn", "Manhattan", "Queens", "Staten Island")
# A generous box around the five boroughs: data_prep drops listings outside, the API refuses them.
NYC_LATITUDE_RANGE = (40.45, 40.95)
NYC_LONGITUDE_RANGE = (-74.30, -73.65)
ROOM_TYPES = ("Entire home/apt", "Private room", "Shared room", "Hotel room")

# Amenity flags the model knows, each with the pattern that finds it in Inside Airbnb's free
# text (full scrapes say "HDTV with Netflix", "Wifi – 300 Mbps", "Central air conditioning").
AMENITY_PATTERNS = {
    "tv": r"\b(?:hd)?tv\b",
    "internet": r"\binternet\b|\bethernet\b",
    "air_conditioning": r"\bair conditioning\b|\bac unit\b",
    "kitchen": r"\bkitchen\b",
    "heating": r"\bheating\b",
    "wifi": r"\bwi-?fi\b",
    "elevator": r"\belevator\b",
    "breakfast": r"\bbreakfast\b",
}
AMENITY_FLAGS = tuple(AMENITY_PATTERNS)

# The challenge's payload names the borough "neighbourhood"; the model accepts either name.
BOROUGH_ALIAS = "neighbourhood"

CATEGORICAL_FIELDS = ("borough", "room_type", "property_type")
NUMERIC_FIELDS = (
    "accommodates",
    "bathrooms",
    "shared_bathroom",
    "bedrooms",
    "beds",
    "latitude",
    "longitude",
    *AMENITY_FLAGS,
    "amenity_count",
)
MODEL_INPUT_FIELDS = CATEGORICAL_FIELDS + NUMERIC_FIELDS
# The numeric fields that are yes/no: 1 if the listing has it, else 0.
FLAG_FIELDS = (*AMENITY_FLAGS, "shared_bathroom")

# The challenge's 12-field payload: what every caller sends. Everything else is optional.
REQUIRED_FIELDS = (
    "accommodates",
    "room_type",
    "beds",
    "bedrooms",
    "bathrooms",
    "borough",
    "tv",
    "elevator",
    "internet",
    "latitude",
    "longitude",
)
# What callers may add: absent fields reach the model as missing values.
OPTIONAL_FIELDS = tuple(field for field in MODEL_INPUT_FIELDS if field not in REQUIRED_FIELDS)

# The two views every model is scored on: every field the API accepts, and only the required
# fields, each optional one absent as the API passes it.
View = Literal["full", "required"]
VIEWS: tuple[str, ...] = get_args(View)


def input_field_types() -> dict[str, tuple[str, bool]]:
    """Each field the model accepts, with its MLflow type and whether callers must send it."""
    # The id is a number or text (the contract says which), and often missing.
    fields: dict[str, tuple[str, bool]] = {"id": ("any", False)}
    for name in MODEL_INPUT_FIELDS:
        kind = "double" if name in NUMERIC_FIELDS else "string"
        # borough may come under the challenge's name instead, so neither is enforced here.
        fields[name] = (kind, name in REQUIRED_FIELDS and name != "borough")
    fields[BOROUGH_ALIAS] = ("string", False)
    return fields
