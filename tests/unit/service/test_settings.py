import pytest

from mlops_lab.service.settings import ServiceSettings, SettingsError


def test_limits_come_from_the_environment(lab_config):
    settings = ServiceSettings.from_config(
        lab_config, {"MAX_BATCH_SIZE": "50", "MAX_CONCURRENT_EXPLANATIONS": "3"}
    )
    assert (settings.max_batch_size, settings.max_concurrent_explanations) == (50, 3)
    assert ServiceSettings.from_config(lab_config, {}).max_batch_size == 1000


def test_a_bad_limit_names_its_variable(lab_config):
    with pytest.raises(SettingsError, match=r"MAX_BATCH_SIZE='x'.*MAX_BODY_BYTES='0'"):
        ServiceSettings.from_config(lab_config, {"MAX_BATCH_SIZE": "x", "MAX_BODY_BYTES": "0"})


def test_the_prediction_log_is_on_by_default_in_the_embedded_file(lab_config):
    log = ServiceSettings.from_config(lab_config, {}).prediction_log
    assert log is not None and log.store_uri.endswith("/mlruns/predictions.db")
    assert log.store_uri.startswith("sqlite:///")


def test_the_prediction_log_takes_its_password_from_the_environment(lab_config):
    uri = "postgresql+psycopg2://predictions@postgres:5432/predictions"
    environment = {"PREDICTION_LOG_URI": uri, "PREDICTION_LOG_PASSWORD": "p@ss/word"}
    log = ServiceSettings.from_config(lab_config, environment).prediction_log
    assert (
        log.store_uri == "postgresql+psycopg2://predictions:p%40ss%2Fword@postgres:5432/predictions"
    )


def test_prediction_log_off_and_a_bad_switch(lab_config):
    assert ServiceSettings.from_config(lab_config, {"PREDICTION_LOG": "off"}).prediction_log is None
    with pytest.raises(SettingsError, match=r"PREDICTION_LOG='maybe'.*'on' or 'off'"):
        ServiceSettings.from_config(lab_config, {"PREDICTION_LOG": "maybe"})
    with pytest.raises(SettingsError, match=r"PREDICTION_LOG_URI:.*must name a user"):
        ServiceSettings.from_config(
            lab_config,
            {"PREDICTION_LOG_URI": "postgresql://postgres/db", "PREDICTION_LOG_PASSWORD": "x"},
        )
