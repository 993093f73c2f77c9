import numpy as np

from mlops_lab.prediction_app.transform import format_predictions, payloads_to_frame


def test_payloads_to_frame_keeps_order_and_fields(challenge_payload):
    frame = payloads_to_frame([challenge_payload, {**challenge_payload, "id": 1002}])
    assert frame["id"].tolist() == [1001, 1002]
    assert frame.loc[0, "neighbourhood"] == "Brooklyn"


def test_format_predictions_takes_the_most_likely_category():
    predictions = format_predictions(
        [7, "x"],
        np.array([[0.1, 0.2, 0.6, 0.1], [0.7, 0.1, 0.1, 0.1]]),
        ["low", "mid", "high", "lux"],
        np.ones(4),
    )
    assert predictions[0] == {
        "id": 7,
        "price_category": "high",
        "probabilities": {"low": 0.1, "mid": 0.2, "high": 0.6, "lux": 0.1},
    }
    assert predictions[1]["id"] == "x"
    assert predictions[1]["price_category"] == "low"


def test_format_predictions_labels_with_the_decision_weights():
    probabilities = np.array([[0.1, 0.2, 0.4, 0.3]])
    weights = np.array([1.0, 1.0, 1.0, 1.5])
    predictions = format_predictions([7], probabilities, ["low", "mid", "high", "lux"], weights)
    assert predictions[0]["price_category"] == "lux"
    assert predictions[0]["probabilities"]["lux"] == 0.3
