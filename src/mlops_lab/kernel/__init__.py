"""The listing and the model: the listing contract, raw listings read into it, the price rule,
the model's parts and how a candidate's model is built.

A saved model carries this package's model modules (tracking/registry.py, MODEL_MODULES) and
loads with them alone, so they import only each other, and this file imports nothing."""
