"""What dvc.yaml runs, one folder per stage: task.py reads, transforms and writes;
transform.py is pure. Stages never import each other."""
