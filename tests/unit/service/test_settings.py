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
