"""The logged model as MLflow's own tools call it (`mlflow.pyfunc.load_model`, `mlflow models
serve`, `mlflow.pyfunc.spark_udf`): each listing checked against the API's contract, then
answered in full, as the service answers it: its price category and each category's
probability. MLflow imports this module by the name the model's MLmodel gives
(tracking/flavor.py writes it), from the copy of the package logged with the model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import mlflow.sklearn
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import Model as MlflowModel
from pydantic import TypeAdapter, ValidationError

from mlops_lab.kernel.contract import (
    PROBABILITY_DECIMALS,
    Listing,
    answer_column_names,
    probability_column,
    validation_summary,
)
from mlops_lab.kernel.decision import ordered_probabilities

# Where the MLmodel file's metadata keeps the categories, in the order answers give them.
CATEGORIES_KEY = "price_categories"
LISTINGS = TypeAdapter(list[Listing])


def is_missing(value: Any) -> bool:
    """Whether a frame's cell holds no value (None, or NaN where a column has gaps)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def checked_listings(model_input: pd.DataFrame) -> pd.DataFrame:
    """The model's input fields of each listing, every one checked against the API's contract;
    an error naming each row and field that breaks it."""
    records = [
        {field: value for field, value in record.items() if not is_missing(value)}
        for record in model_input.to_dict("records")
    ]
    try:
        listings = LISTINGS.validate_python(records)
    except ValidationError as error:
        raise MlflowException.invalid_parameter_value(
            f"listings not priced: {validation_summary(error)}"
        ) from None
    return pd.DataFrame([listing.model_input() for listing in listings], index=model_input.index)


class ListingAnswers:
    """The scikit-learn model behind MLflow's pyfunc interface."""

    def __init__(self, model: Any, categories: list[str]) -> None:
        self.model = model
        self.categories = categories

    def predict(
        self, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Each listing's price category and the probability of each category, in its row."""
        if model_input.empty:
            return pd.DataFrame(columns=answer_column_names(self.categories))
        listings = checked_listings(model_input)
        probabilities = ordered_probabilities(
            self.model.predict_proba(listings), list(self.model.classes_), self.categories
        )
        answers = pd.DataFrame(
            {"price_category": self.model.predict(listings)}, index=model_input.index
        )
        for position, category in enumerate(self.categories):
            # Rounded as the service rounds them: the same numbers as /predict.
            answers[probability_column(category)] = [
                round(p, PROBABILITY_DECIMALS) for p in probabilities[:, position].tolist()
            ]
        return answers


def _load_pyfunc(path: str) -> ListingAnswers:
    """MLflow's hook for a pyfunc loader module: `path` is the model's folder (or, as MLflow's
    own loaders allow, its model file)."""
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    categories = MlflowModel.load(folder).metadata[CATEGORIES_KEY]
    return ListingAnswers(mlflow.sklearn.load_model(str(folder)), list(categories))
