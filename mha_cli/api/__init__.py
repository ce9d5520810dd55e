"""The Python API: the same answers as the commands, as objects instead of printed text.

One module per command, each a thin layer over the core: build the specification from the
option names (`heads=5, valid_lens="3,2"`), check what needs no tensors, then run the torch
core. `mha_cli/__init__.py` exposes the functions as `mha_cli.inspect(...)` and so on.
"""
