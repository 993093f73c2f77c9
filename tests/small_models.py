"""Small models for tests: each fits the 2,000-listing sample in about a second."""

SMALL_FOREST = {"n_estimators": 5, "random_state": 0, "n_jobs": 2}
SMALL_BOOSTING = {"max_iter": 5, "random_state": 0}
SMALL_VOTE = {
    "members": {
        "forest": {"estimator": "random_forest", "params": SMALL_FOREST},
        "boosting": {"estimator": "hist_gradient_boosting", "params": SMALL_BOOSTING},
    }
}
SMALL_ESTIMATORS = {
    "random_forest": SMALL_FOREST,
    "hist_gradient_boosting": SMALL_BOOSTING,
    "soft_vote": SMALL_VOTE,
}
SMALL_ROUTER = {
    "members": {
        "everything": {
            "estimator": "soft_vote",
            "features": "all",
            "params": SMALL_VOTE,
            "decision": "macro_f1",
        },
        "required_only": {
            "estimator": "hist_gradient_boosting",
            "features": "required",
            "params": SMALL_BOOSTING,
            "decision": "most_probable",
        },
    }
}
