"""The listing contract as code: what the API, batch scoring and the logged model's own
`predict` accept, each problem named by its field. Logged with the model (MODEL_MODULES)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from mlops_lab.kernel.listing import (
    BOROUGHS,
    NYC_LATITUDE_RANGE,
    NYC_LONGITUDE_RANGE,
    ROOM_TYPES,
)

ID_MAX_LENGTH = 100
# Answers give probabilities to this many decimals: the service, batch scoring and the model's
# own predict alike.
PROBABILITY_DECIMALS = 6


def _whole_number(value: object) -> object:
    """4.0 as 4: JSON Schema counts a number with no fraction as an integer, so the API does."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _flag(value: object) -> object:
    """0 or 1 as numbers: true/false are refused, as the documented enum [0, 1] refuses them."""
    if isinstance(value, bool):
        raise ValueError("Input should be 0 or 1, not true or false")
    return _whole_number(value)


def _storable_text(value: str) -> str:
    """Text the prediction store takes as it is, on PostgreSQL and SQLite alike."""
    if "\x00" in value:
        raise ValueError("Text should not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("Text should be valid Unicode (it has a lone surrogate)") from None
    return value


def _storable_id(value: object) -> object:
    """An id whose text (the store keeps ids as text) fits the store, with one clear problem
    when it does not, not one per type the id may have."""
    if isinstance(value, str):
        if len(value) > ID_MAX_LENGTH:
            raise ValueError(f"String should have at most {ID_MAX_LENGTH} characters")
        return _storable_text(value)
    # bit_length first: Python refuses to turn an integer of over 4,300 digits into text.
    too_long = isinstance(value, int) and (
        value.bit_length() > 4 * ID_MAX_LENGTH or len(str(value)) > ID_MAX_LENGTH
    )
    if too_long:
        raise ValueError(f"Integer should have at most {ID_MAX_LENGTH} characters as text")
    return value


WholeNumber = BeforeValidator(_whole_number)
# Said in the document too, so that any text it allows is text the service takes.
WITHOUT_NUL = r"^[^\u0000]*$"
StorableText = Annotated[
    str, AfterValidator(_storable_text), Field(json_schema_extra={"pattern": WITHOUT_NUL})
]
ListingId = Annotated[
    int | Annotated[StorableText, Field(max_length=ID_MAX_LENGTH)],
    BeforeValidator(_storable_id),
]
Flag = Annotated[
    Literal[0, 1], BeforeValidator(_flag), Field(description="1 if the listing has it, else 0")
]


def _exact_multiple(step: float):
    """A check that a value is a multiple of `step` exactly (pydantic's allows a tolerance)."""

    def check(value: float) -> float:
        if not (value / step).is_integer():
            raise ValueError(f"Input should be a multiple of {step:g}")
        return value

    return AfterValidator(check)


# Rooms and beds are whole counts; bathrooms come in halves, as Inside Airbnb writes them.
Rooms = Annotated[float, Field(ge=0, le=50, multiple_of=1), _exact_multiple(1)]
Bathrooms = Annotated[float, Field(ge=0, le=50, multiple_of=0.5), _exact_multiple(0.5)]


class Listing(BaseModel):
    """One listing to price. Unknown fields are rejected, so a misspelt field is never ignored."""

    # The example in the OpenAPI document is config.yaml's challenge payload (openapi.py).
    model_config = ConfigDict(extra="forbid", strict=True)

    # Bounded, as every string is: it is echoed back, and logged.
    id: ListingId | None = Field(
        default=None, description="Your reference, returned as is; never used by the model."
    )
    accommodates: Annotated[int, WholeNumber] = Field(
        ge=1, le=50, description="Guests the listing sleeps."
    )
    room_type: Literal[ROOM_TYPES] = Field(description="Inside Airbnb's room type.")  # type: ignore[valid-type]
    beds: Rooms
    bedrooms: Rooms
    bathrooms: Bathrooms
    borough: Literal[BOROUGHS] = Field(  # type: ignore[valid-type]
        validation_alias=AliasChoices("neighbourhood", "borough"),
        serialization_alias="neighbourhood",
        description="The borough. Named `neighbourhood` as in the challenge; `borough` also works.",
    )
    tv: Flag
    elevator: Flag
    internet: Flag
    latitude: float = Field(ge=NYC_LATITUDE_RANGE[0], le=NYC_LATITUDE_RANGE[1])
    longitude: float = Field(ge=NYC_LONGITUDE_RANGE[0], le=NYC_LONGITUDE_RANGE[1])
    # Constraints of optional fields go inside the type, so the JSON Schema states them too.
    property_type: Annotated[StorableText, Field(max_length=100)] | None = Field(
        default=None,
        description="Inside Airbnb's free-text property type, e.g. 'Entire rental unit'.",
    )
    shared_bathroom: Flag | None = None
    air_conditioning: Flag | None = None
    kitchen: Flag | None = None
    heating: Flag | None = None
    wifi: Flag | None = None
    breakfast: Flag | None = None
    amenity_count: Annotated[int, Field(ge=0, le=1000), WholeNumber] | None = None

    def model_input(self) -> dict[str, Any]:
        """The fields under the names the model takes (absent optional fields left out)."""
        return self.model_dump(exclude_none=True, exclude={"id"})


def field_path(location: tuple[Any, ...]) -> str:
    """A pydantic error location as `[3].bedrooms` or `bedrooms`."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def validation_details(error: ValidationError) -> list[dict[str, str]]:
    """Each validation problem as the field and what is wrong with it."""
    details = []
    for problem in error.errors(include_url=False):
        # A list's type name is not a field: `[3].bedrooms`, not `list[Listing][3].bedrooms`.
        location = tuple(
            part
            for part in problem["loc"]
            if not (isinstance(part, str) and part.startswith("list["))
        )
        details.append({"field": field_path(location), "problem": problem["msg"]})
    return details


def validation_summary(error: ValidationError) -> str:
    """Each validation problem as `field: what is wrong`, on one line."""
    return "; ".join(
        f"{detail['field']}: {detail['problem']}" for detail in validation_details(error)
    )


def probability_column(category: str) -> str:
    """The column of an answer that holds one category's probability."""
    return f"probability_{category}"


def answer_column_names(categories: list[str]) -> list[str]:
    """The columns of the answers, in order: the category, then each category's probability."""
    return ["price_category", *map(probability_column, categories)]
