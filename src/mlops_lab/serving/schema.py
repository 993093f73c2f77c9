"""The API's answers and feedback, beside the listing contract (kernel/contract.py): together
they validate requests and generate the OpenAPI document."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from mlops_lab.kernel.contract import ListingId, StorableText

API_VERSION = "1.0.0"


class Contribution(BaseModel):
    field: str = Field(
        description="A listing field: room_type, tv, … (`borough` for `neighbourhood`)."
    )
    value: str | float | None = Field(description="The field's value in the request.")
    contribution: float = Field(
        description="How much the field moved the predicted category's probability."
    )


class Prediction(BaseModel):
    id: int | str | None
    # One of config.yaml's price categories: the OpenAPI document lists them (openapi.py).
    price_category: str
    probabilities: dict[str, float]
    explanation: list[Contribution] | None = Field(
        default=None,
        description=(
            "With ?explain=true: the listing fields that moved the predicted category's "
            "probability most (SHAP values), largest first."
        ),
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


class Feedback(BaseModel):
    """The truth about a listing the service priced: its true price, or its category."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: ListingId = Field(description="The `id` the listing was sent to /predict with.")
    price: Annotated[float, Field(gt=0, le=1_000_000)] | None = Field(
        default=None, description="The listing's true nightly price, in dollars."
    )
    # One of config.yaml's price categories: the OpenAPI document lists them (openapi.py).
    price_category: Annotated[StorableText, Field(max_length=50)] | None = Field(
        default=None, description="The listing's true price category, when the price is not known."
    )

    @model_validator(mode="after")
    def _one_truth(self) -> Feedback:
        if (self.price is None) == (self.price_category is None):
            raise ValueError("send either price or price_category (one of them, not both)")
        return self


class FeedbackResponse(BaseModel):
    received: int = Field(description="Feedback records stored.")
