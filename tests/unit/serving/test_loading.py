import logging

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mlops_lab.kernel.decision import ordered_probabilities
from mlops_lab.kernel.features import conform_records
from mlops_lab.kernel.listing import MODEL_INPUT_FIELDS, input_field_types
from mlops_lab.kernel.modelling import SKOPS_TRUSTED_TYPES, build_model
from mlops_lab.serving.compiled import CompiledPipeline, compile_model
from mlops_lab.serving.loading import (
    ModelNotFound,
    PipelinePredictor,
    ServedModel,
    check_answers,
    choose_predictor,
    complete_listings,
    load_served_model,
)
from mlops_lab.tracking.registry import signature

CATEGORIES = ["low", "mid", "high", "lux"]


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


def test_a_compiled_model_that_disagrees_is_logged_and_the_pipeline_answers(
    split, tmp_path, caplog
):
    train, test = split
    model = build_model(
        "random_forest",
        ("room_type", "accommodates", "bedrooms"),
        {"n_estimators": 5, "random_state": 0},
    ).fit(train, train["price_category"])
    # A corrupted model: its encoder's fitted column list names the two numbers in the other
    # order. scikit-learn takes the columns it was fitted on; the compiler lays them out from
    # that list, so the compiled model feeds the forest bedrooms as accommodates.
    encode = model.named_steps["encode"]
    name, passthrough, numbers = encode.transformers_[-1]
    encode.transformers_[-1] = (name, passthrough, numbers[::-1])
    listings = test[list(MODEL_INPUT_FIELDS)].head(40)
    assert not np.array_equal(
        compile_model(model).predict_proba(records(listings)), model.predict_proba(listings)
    )
    directory = tmp_path / "model"
    mlflow.sklearn.save_model(
        model,
        str(directory),
        # As training logs a model: its input contract and an example, here five listings.
        signature=signature(input_field_types(), CATEGORIES),
        input_example=listings.head(5),
        pip_requirements=[],
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
    )

    with caplog.at_level(logging.WARNING, logger="mlops_lab.serving.loading"):
        served = load_served_model(str(directory), CATEGORIES)
    assert [
        (record.levelname, record.getMessage())
        for record in caplog.records
        if record.name == "mlops_lab.serving.loading" and record.levelno >= logging.WARNING
    ] == [("ERROR", "the compiled model disagrees with the model; serving the model (slower)")]
    assert isinstance(served.predictor, PipelinePredictor)
    answers = served.predict_listings(records(listings), list(listings.index), explain=False)
    expected = ordered_probabilities(
        model.predict_proba(listings), list(model.classes_), CATEGORIES
    )
    assert [answer["price_category"] for answer in answers] == list(model.predict(listings))
    # The API rounds each probability to 6 decimals, as Python's round does.
    assert [[answer["probabilities"][name] for name in CATEGORIES] for answer in answers] == [
        [round(probability, 6) for probability in row] for row in expected.tolist()
    ]


def test_a_folder_without_a_model_says_how_to_make_one(tmp_path):
    with pytest.raises(ModelNotFound, match=r"no model at .*models: `dvc repro` \(or `make run`\)"):
        load_served_model(str(tmp_path / "models"), CATEGORIES)


def test_the_check_passes_a_sound_model_and_refuses_answers_that_do_not_add_up(
    boosted, split, challenge_payload
):
    _, test = split
    example = test[list(MODEL_INPUT_FIELDS)].head(5)
    predictor = choose_predictor(boosted, example)

    def served(categories: list[str]) -> ServedModel:
        return ServedModel(
            boosted, predictor, "m", "m", "1", categories, complete_listings(example)
        )

    check_answers(served(CATEGORIES), (challenge_payload,))
    # Served as if it knew three categories: the fourth's probability is missing from its sums.
    with pytest.raises(ValueError, match="listing 1001 was answered"):
        check_answers(served(CATEGORIES[:3]), (challenge_payload,))
