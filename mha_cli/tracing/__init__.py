"""A learner's module traced against d2l's layer (`mha trace`): hooks and frames (tracing.py,
frames.py, axes.py), matched stage by stage (match.py, check.py, explain.py), its records, report
and renderers (lines.py, table.py)."""
