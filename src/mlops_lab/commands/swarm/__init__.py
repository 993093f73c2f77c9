"""swarm: the compose stack rendered for, and deployed on, a Docker Swarm."""
