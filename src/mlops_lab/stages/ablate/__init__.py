"""`mlops-lab ablate`: what each feature group earns, paired fold by fold."""
