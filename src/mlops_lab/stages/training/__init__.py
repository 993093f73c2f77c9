"""Stage 2: cross-validate candidate models, register the winner, save it locally."""
