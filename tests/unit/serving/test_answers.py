import numpy as np

from mlops_lab.service.errors import MAX_DETAILS, capped
from mlops_lab.serving.answers import format_predictions


def test_format_predictions_takes_the_most_likely_category():
    predictions = format_predictions(
        [7, "x"],
        np.array([[0.1, 0.2, 0.6, 0.1], [0.7, 0.1, 0.1, 0.1]]),
        ["low", "mid", "high", "lux"],
        np.ones((2, 4)),
    )
    assert predictions[0] == {
        "id": 7,
        "price_category": "high",
        "probabilities": {"low": 0.1, "mid": 0.2, "high": 0.6, "lux": 0.1},
    }
    assert predictions[1]["id"] == "x"
    assert predictions[1]["price_category"] == "low"


def test_format_predictions_labels_with_the_decision_weights():
    probabilities = np.array([[0.1, 0.2, 0.4, 0.3], [0.1, 0.2, 0.4, 0.3]])
    # Each listing has the weights of the model that answered it (a router's member).
    weights = np.array([[1.0, 1.0, 1.0, 1.5], [1.0, 1.0, 1.0, 1.0]])
    predictions = format_predictions([7, 8], probabilities, ["low", "mid", "high", "lux"], weights)
    assert [p["price_category"] for p in predictions] == ["lux", "high"]
    assert predictions[0]["probabilities"]["lux"] == 0.3


def test_error_details_are_capped_with_a_count():
    details = [{"field": f"[{n}].beds", "problem": "required"} for n in range(50)]
    shown = capped(details)
    assert len(shown) == MAX_DETAILS + 1
    assert shown[-1] == {"field": "body", "problem": "and 30 more problems"}
    assert capped(details[:3]) == details[:3]
