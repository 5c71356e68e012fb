"""Pure policies of the worker: what a failed request means, and how long to wait before a retry."""
