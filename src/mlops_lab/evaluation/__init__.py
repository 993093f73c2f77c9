"""How models are scored: the prepared table and its split, folds, held-out predictions on both
views, the scores, and the selection score that compares candidates and champions."""
