"""Variants of one layer side by side: which to run (choose.py) and what differs
between their recorded runs (compare.py). Pure Python: the runs come from the torch core."""
