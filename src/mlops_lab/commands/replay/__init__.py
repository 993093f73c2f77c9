"""`mlops-lab replay`: listings sent to a running service, shifted or not, with their feedback."""

# The parts of the prepared table replay can send: the notebook's split, or all of it.
PARTS = ("train", "test", "all")
