"""The API's one schema: validates requests and generates the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, RootModel

from mlops_lab.data_prep.transform import NYC_LATITUDE_RANGE, NYC_LONGITUDE_RANGE
from mlops_lab.listing import BOROUGHS, ROOM_TYPES

API_VERSION = "1.0.0"

Flag = Annotated[Literal[0, 1], Field(description="1 if the listing has it, else 0")]
Count = Annotated[float, Field(ge=0, le=50)]

CHALLENGE_EXAMPLE: dict[str, Any] = {
    "id": 1001,
    "accommodates": 4,
    "room_type": "Entire home/apt",
    "beds": 2,
    "bedrooms": 1,
    "bathrooms": 2,
    "neighbourhood": "Brooklyn",
    "tv": 1,
    "elevator": 1,
    "internet": 0,
    "latitude": 40.71383,
    "longitude": -73.9658,
}


class Listing(BaseModel):
    """One listing to price. Unknown fields are rejected, so a misspelt field is never ignored."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [CHALLENGE_EXAMPLE]},
    )

    id: int | str | None = Field(
        default=None, description="Your reference, returned as is; never used by the model."
    )
    accommodates: int = Field(ge=1, le=50, description="Guests the listing sleeps.")
    room_type: Literal[ROOM_TYPES] = Field(description="Inside Airbnb's room type.")  # type: ignore[valid-type]
    beds: Count
    bedrooms: Count
    bathrooms: Count
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
    property_type: str | None = Field(
        default=None,
        max_length=100,
        description="Inside Airbnb's free-text property type, e.g. 'Entire rental unit'.",
    )
    shared_bathroom: Flag | None = None
    air_conditioning: Flag | None = None
    kitchen: Flag | None = None
    heating: Flag | None = None
    wifi: Flag | None = None
    breakfast: Flag | None = None
    amenity_count: int | None = Field(default=None, ge=0, le=1000)

    def model_input(self) -> dict[str, Any]:
        """The fields under the names the model takes (absent optional fields left out)."""
        return self.model_dump(exclude_none=True, exclude={"id"})


class PredictionBatch(RootModel[list[Listing]]):
    """A list of listings, priced in order."""

    root: list[Listing] = Field(min_length=1)


class Prediction(BaseModel):
    id: int | str | None
    price_category: Literal["low", "mid", "high", "lux"]
    probabilities: dict[str, float]
    explanation: list[dict[str, Any]] | None = Field(
        default=None, description="With ?explain=true: the largest SHAP contributions."
    )


class PredictionResponse(BaseModel):
    model_name: str
    model_version: str
    api_version: str
    predictions: list[Prediction]


class ErrorDetail(BaseModel):
    field: str = Field(description="Where the problem is, e.g. `[3].bedrooms` or `body`.")
    problem: str


class ErrorResponse(BaseModel):
    error: str
    details: list[ErrorDetail] = []
    request_id: str | None = None
