"""promote: the pipeline's last stage, which moves the champion alias."""
