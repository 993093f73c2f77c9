"""Pure functions of the smoke stage: the payloads it answers, checked as the API checks them."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from mlops_lab.config import ConfigError
from mlops_lab.kernel.contract import Listing, validation_details


def validated_payloads(payloads: list[dict[str, Any]]) -> list[Listing]:
    """The payloads as the API validates them; ConfigError naming the first it would refuse."""
    listings = []
    for payload in payloads:
        try:
            listings.append(Listing.model_validate(payload))
        except ValidationError as error:
            problems = "; ".join(
                f"{detail['field']}: {detail['problem']}" for detail in validation_details(error)
            )
            raise ConfigError(
                f"config.yaml prediction_app: the payload with id {payload.get('id')} is one the "
                f"API would refuse ({problems})"
            ) from error
    return listings
