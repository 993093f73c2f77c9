"""rollback: the champion alias back to an earlier version that passed the gate."""
