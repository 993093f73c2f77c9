"""Stage 1: validate the raw listings and build the training table."""
