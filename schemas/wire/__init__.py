"""Wire formats: the callback job a producer sends and the outcome every job ends in (contract §3, §5)."""
