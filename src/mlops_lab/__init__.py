"""MLOps Lab: the Airbnb price-category pipeline, tracked in MLflow and versioned by DVC."""
