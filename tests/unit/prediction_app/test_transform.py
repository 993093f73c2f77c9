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
    )
    assert predictions[0] == {
        "id": 7,
        "price_category": "high",
        "probabilities": {"low": 0.1, "mid": 0.2, "high": 0.6, "lux": 0.1},
    }
    assert predictions[1]["id"] == "x"
    assert predictions[1]["price_category"] == "low"
