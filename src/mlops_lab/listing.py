"""The listing fields the model takes, shared by data preparation, training and serving."""

from __future__ import annotations

BOROUGHS = ("Bronx", "Brooklyn", "Manhattan", "Queens", "Staten Island")
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
