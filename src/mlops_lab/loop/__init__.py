"""loop: one turn of monitor → harvest → retrain as a DVC experiment → the promotion gate."""
