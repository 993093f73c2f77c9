"""A raw Inside Airbnb row, as the listings file has it, for tests of what reads such files."""


def raw_listing(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": "1",
        "neighbourhood_group_cleansed": "Brooklyn",
        "property_type": "Entire rental unit",
        "room_type": "Entire home/apt",
        "latitude": "40.68",
        "longitude": "-73.95",
        "accommodates": "2",
        "bathrooms": None,
        "bathrooms_text": "1 bath",
        "bedrooms": "1.0",
        "beds": "1.0",
        "amenities": '["TV", "Wifi"]',
        "price": "$75.00",
    }
    row.update(overrides)
    return row
