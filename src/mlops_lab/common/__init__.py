"""What every room uses: the one-line user error, atomic writes, secrets read from files, and
JSON as the lab writes it."""
