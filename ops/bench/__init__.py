"""Benchmarks: each measures callq against a baseline in the same run and prints ratios.

Run all with ``python -m ops.bench`` (``--quick`` to check in seconds that they work). Each brings
up its own ``redis-server`` and sandbox portal on free ports and cleans up after itself.
"""
