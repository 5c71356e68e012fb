"""arq's own test suite, run against callq's worker (``make test-arq``)."""
