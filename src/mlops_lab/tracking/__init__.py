"""Where runs are tracked and how a model is registered: MLflow, through its public API."""
