"""The worker process: arq's settings and hooks, running until stopped, metrics."""
