"""Property-based fuzz of the service from its own OpenAPI document (schemathesis)."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 60


def test_no_5xx_and_every_response_matches_the_documented_schema(local_service):
    schema = schemathesis.openapi.from_url(f"{local_service.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "POST /predict",
        "POST /feedback",
        "GET /ready",
        "GET /metrics",
    }
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case):
            case.call_and_validate(headers=local_service.feedback_headers)

        fuzz()
