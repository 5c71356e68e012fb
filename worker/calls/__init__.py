"""Following each callback's call to its end (pull), and redialling the ones not answered (issue 14)."""
