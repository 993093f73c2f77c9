"""`mlops-lab monitor`: the prediction log's drift and quality against what the model was trained
and tested on."""
