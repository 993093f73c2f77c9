"""Property-based fuzz of the service from its own OpenAPI document (schemathesis): requests
that fit the document and requests that break it, with the prediction log on PostgreSQL."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from services import ready_service

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 60
# What a caller can get wrong: the bodies of the operations that take one.
TAKES_A_BODY = {"POST /predict", "POST /feedback"}
# A body that breaks the document is refused with schemathesis's usual 4xx, or with 413 when it
# holds more listings or records than the documented maximum (maxItems), as the document says.
REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
CONFIG = f"""
[checks.negative_data_rejection]
expected-statuses = {REFUSALS}
"""


@pytest.fixture(scope="module")
def logging_to_postgres(trained_lab, store_cluster, tmp_path_factory):
    """The service logging to a PostgreSQL database, as the stack runs it."""
    with ready_service(
        {
            "MODEL_URI": str(trained_lab.path / "models" / "price_category"),
            "PREDICTION_LOG_URI": store_cluster.database("fuzzed", "fuzzed"),
        },
        tmp_path_factory.mktemp("fuzzed-service") / "service.log",
    ) as service:
        yield service


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_5xx_and_every_response_matches_the_documented_schema(logging_to_postgres, mode):
    # Negative cases must also be refused with a 4xx (schemathesis's negative_data_rejection).
    service = logging_to_postgres
    schema = schemathesis.openapi.from_url(
        f"{service.url}/openapi.json", config=SchemathesisConfig.from_str(CONFIG)
    )
    operations = {
        f"{operation.method.upper()} {operation.path}": operation
        for operation in (result.ok() for result in schema.get_all_operations())
    }
    assert set(operations) >= TAKES_A_BODY | {"GET /ready", "GET /metrics"}
    fuzzed = operations if mode is GenerationMode.POSITIVE else TAKES_A_BODY
    for name in sorted(fuzzed):

        @given(case=operations[name].as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case):
            case.call_and_validate(headers=service.feedback_headers)

        fuzz()
