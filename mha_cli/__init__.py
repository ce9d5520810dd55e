"""mha: a command-line shape and weight inspector for multi-head attention."""

__version__ = "0.1.0"
