"""`mlops-lab harvest`: the service's logged predictions that got feedback, as labelled data."""
