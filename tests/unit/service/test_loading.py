import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mlops_lab.kernel.compiled import CompiledPipeline
from mlops_lab.kernel.features import conform_records
from mlops_lab.kernel.modelling import build_model
from mlops_lab.service.loading import (
    ModelNotFound,
    PipelinePredictor,
    choose_predictor,
    load_served_model,
)


def records(frame: pd.DataFrame) -> list[dict]:
    return frame.to_dict("records")


def test_a_model_the_compiler_cannot_take_is_served_by_its_pipeline(split):
    train, test = split
    scaled = Pipeline(
        [
            ("listing_features", build_model("random_forest", ("accommodates",), {})[0]),
            ("scale", StandardScaler()),
            ("classifier", build_model("random_forest", ("accommodates",), {})[-1]),
        ]
    ).fit(train, train["price_category"])
    predictor = choose_predictor(scaled, test.head(5))
    assert isinstance(predictor, PipelinePredictor)
    probabilities, _ = predictor.answer_columns(conform_records(records(test.head(3))))
    assert np.array_equal(probabilities, scaled.predict_proba(test.head(3)))


def test_the_served_champion_is_compiled_when_it_matches(boosted, split):
    _, test = split
    assert isinstance(choose_predictor(boosted, test.head(10)), CompiledPipeline)


def test_a_folder_without_a_model_says_how_to_make_one(tmp_path):
    with pytest.raises(ModelNotFound, match=r"no model at .*models: `dvc repro` \(or `make run`\)"):
        load_served_model(str(tmp_path / "models"), ["low", "mid", "high", "lux"])
