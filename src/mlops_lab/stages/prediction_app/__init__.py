"""Stage 4 and the service: load the champion as serving does and predict listings."""
