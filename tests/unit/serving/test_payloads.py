import json
import math

import numpy as np
import pandas as pd

from mlops_lab.serving.payloads import payloads


def test_empty_cells_are_left_out_as_a_caller_leaves_out_a_field():
    frame = pd.DataFrame({"id": [1, 2], "wifi": [1.0, math.nan], "property_type": ["Loft", None]})
    assert payloads(frame) == [{"id": 1, "wifi": 1.0, "property_type": "Loft"}, {"id": 2}]


def test_numbers_are_pythons_so_the_rows_encode_as_json():
    frame = pd.DataFrame({"id": np.array([3831], dtype="int64"), "beds": np.array([2.0])})
    assert json.loads(json.dumps(payloads(frame))) == [{"id": 3831, "beds": 2.0}]
