"""Facts that must agree wherever they are used: the API's schema and the model's inputs, the
service's defaults and config.yaml, the payloads and what the API accepts."""

from pydantic import ValidationError

from mlops_lab.kernel.contract import Listing
from mlops_lab.kernel.listing import (
    BOROUGH_ALIAS,
    FLAG_FIELDS,
    MODEL_INPUT_FIELDS,
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    input_field_types,
)
from mlops_lab.service.openapi import openapi_document
from mlops_lab.service.settings import ServiceSettings
from mlops_lab.stages.prediction_app.transform import validated_payloads
from mlops_lab.tracking.registry import alias_uri


def test_the_api_takes_exactly_the_models_input_fields():
    fields = {
        (field.validation_alias.choices[-1] if field.validation_alias else name): field
        for name, field in Listing.model_fields.items()
    }
    assert set(fields) - {"id"} == set(MODEL_INPUT_FIELDS)
    required = {name for name, field in fields.items() if field.is_required()}
    assert required == set(REQUIRED_FIELDS)
    assert {name for name in fields if name != "id"} - required == set(OPTIONAL_FIELDS)
    assert set(input_field_types()) == {"id", BOROUGH_ALIAS, *MODEL_INPUT_FIELDS}


def test_the_yes_no_fields_are_the_apis_flags():
    schema = Listing.model_json_schema()["properties"]

    def takes_zero_or_one(field: dict) -> bool:
        return any(option.get("enum") == [0, 1] for option in field.get("anyOf", [field]))

    assert {name for name, field in schema.items() if takes_zero_or_one(field)} == set(FLAG_FIELDS)


def test_the_services_defaults_are_config_yamls(lab_config):
    local = ServiceSettings.from_config(lab_config, {})
    assert local.model_uri == str(lab_config.promotion.champion_dir)
    assert local.categories == tuple(lab_config.data_prep.price_categories)
    assert local.example == lab_config.prediction_app.challenge_payload
    assert local.tracking_uri.endswith(f"{lab_config.tracking.embedded_store_dir}/mlflow.db")
    tracked = ServiceSettings.from_config(lab_config, {"MLFLOW_TRACKING_URI": "http://mlflow:5000"})
    assert tracked.model_uri == alias_uri(lab_config.tracking.registered_model_name, "champion")
    assert tracked.tracking_uri == "http://mlflow:5000"
    chosen = ServiceSettings.from_config(lab_config, {"MODEL_URI": "models:/other/3"})
    assert chosen.model_uri == "models:/other/3"


def test_the_documented_api_shows_config_yamls_categories_and_payload(lab_config):
    spec = openapi_document(ServiceSettings.from_config(lab_config, {}))
    schemas = spec["components"]["schemas"]
    assert schemas["Prediction"]["properties"]["price_category"]["enum"] == list(
        lab_config.data_prep.price_categories
    )
    assert schemas["Listing"]["examples"] == [lab_config.prediction_app.challenge_payload]
    assert "lux (over $400)" in spec["info"]["description"]


def test_every_payload_in_config_yaml_is_one_the_api_accepts(lab_config):
    payloads = lab_config.prediction_app.payloads()
    assert len(validated_payloads(payloads)) == len(payloads)


def test_a_payload_the_api_would_refuse_is_named(lab_config):
    refused = {**lab_config.prediction_app.challenge_payload, "bedrooms": -1}
    try:
        validated_payloads([refused])
    except Exception as error:  # ConfigError, naming the payload and the field
        assert "id 1001" in str(error) and "bedrooms" in str(error)
        assert isinstance(error.__cause__, ValidationError)
    else:
        raise AssertionError("a refused payload passed")
