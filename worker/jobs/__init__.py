"""Running one callback job: slots, the attempt and its lease, what a failure leads to, the outcome."""
