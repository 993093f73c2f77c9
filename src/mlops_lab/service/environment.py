"""The variables through which `mlops-lab serve` and the service's workers hand each other what
they share. A module of names only: the CLI imports it before anything sets up numpy's threads."""

# The config.yaml `mlops-lab serve --config` was given (./config.yaml if unset).
CONFIG_VARIABLE = "MLOPS_LAB_CONFIG"
# The folder where the workers share their explanation slots (service/server.py makes one).
SLOTS_VARIABLE = "MLOPS_LAB_EXPLANATION_SLOTS"
# The folder where the workers' metrics are merged (prometheus_client reads this name).
METRICS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
