"""The variables through which `mlops-lab serve`, gunicorn's master and its workers hand each
other what they share. A module of names only: the master and the CLI import it before anything
sets up numpy's threads."""

# The config.yaml `mlops-lab serve --config` was given (./config.yaml if unset).
CONFIG_VARIABLE = "MLOPS_LAB_CONFIG"
# The folder where the workers share their explanation slots (gunicorn_config.py makes one).
SLOTS_VARIABLE = "MLOPS_LAB_EXPLANATION_SLOTS"
