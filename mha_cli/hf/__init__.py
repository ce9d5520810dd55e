"""Hugging Face checkpoints: config.json read into one layer's attention (config.py), the
weight names of each family (layouts.py), positions (positions.py), the layer loaded
(checkpoint.py)."""
