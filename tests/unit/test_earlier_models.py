"""A champion registered by an earlier version of the lab names its classes by their old module
paths (mlops_lab.features, .blend, .decision). After an upgrade it must still load, so that
promotion can score it against the new model and the service can serve it until then."""

import io
import json
import zipfile

import numpy as np
import skops.io
from small_models import SMALL_VOTE

from mlops_lab.kernel.features import ALL_FEATURES
from mlops_lab.kernel.modelling import build_model

EARLIER_TRUSTED_TYPES = [
    "mlops_lab.blend.SoftVoteClassifier",
    "mlops_lab.decision.MacroF1Decision",
    "mlops_lab.features.ListingFeatures",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
]


def saved_as_earlier(model) -> bytes:
    """The model's skops file as the earlier layout wrote it: kernel modules at the top."""
    archive = io.BytesIO(skops.io.dumps(model))
    rewritten = io.BytesIO()
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(rewritten, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "schema.json":
                data = data.replace(b'"mlops_lab.kernel.', b'"mlops_lab.')
                assert b"mlops_lab.kernel" not in data
                json.loads(data)
            target.writestr(item, data)
    return rewritten.getvalue()


def test_a_model_saved_before_the_kernel_existed_still_loads(listing_sample):
    model = build_model("soft_vote", ALL_FEATURES, SMALL_VOTE, "macro_f1")
    model.fit(listing_sample, listing_sample["price_category"])
    earlier = saved_as_earlier(model)
    assert set(skops.io.get_untrusted_types(data=earlier)) == set(EARLIER_TRUSTED_TYPES)
    loaded = skops.io.loads(earlier, trusted=EARLIER_TRUSTED_TYPES)
    head = listing_sample.head(50)
    assert np.array_equal(loaded.predict_proba(head), model.predict_proba(head))
    assert list(loaded.predict(head)) == list(model.predict(head))
