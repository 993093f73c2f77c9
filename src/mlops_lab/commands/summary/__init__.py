"""summary: what the last pipeline run made, in a few lines (the end of `make run`)."""
