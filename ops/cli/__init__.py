"""The ``callq`` command: one table of verbs (:mod:`ops.cli.main`), a module per verb or family.

The top layer: it assembles workers and producers into processes and prints for people.
"""
