import json

import numpy as np
from flask import Flask, jsonify

from mlops_lab.service.json_provider import OrjsonProvider


def app_with_provider() -> Flask:
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    return app


def test_responses_are_the_documents_flasks_own_provider_writes_less_its_newline():
    document = {"id": 7, "probabilities": {"mid": 0.25, "low": 0.75}, "name": "Queens"}
    ours, flasks = app_with_provider(), Flask(__name__)
    for app in (ours, flasks):
        with app.app_context():
            app.config["body"] = jsonify(document).get_data()
    assert ours.config["body"] == flasks.config["body"].rstrip(b"\n")


def test_an_id_beyond_64_bits_and_numpy_numbers_are_written_too():
    app = app_with_provider()
    with app.app_context():
        body = jsonify({"id": 2**70, "probability": np.float64(0.5), "name": "Bronx"}).get_data()
    assert json.loads(body) == {"id": 2**70, "probability": 0.5, "name": "Bronx"}
