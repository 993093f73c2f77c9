"""Loading a model and answering with it, for the HTTP service and the batch commands alike:
the fast compiled path, explanations, what a caller may send, and where answers are kept."""
