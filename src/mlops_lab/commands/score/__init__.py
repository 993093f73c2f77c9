"""`mlops-lab score`: a listings file scored by the champion, as the service answers."""
