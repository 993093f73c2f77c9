"""`mlops-lab tune`: an Optuna study per candidate, shared by workers through PostgreSQL."""
