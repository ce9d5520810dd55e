"""The layer's dataflow as a picture: a pure model built from the stage records (model.py),
drawn by matplotlib (image.py) or in the terminal (terminal.py)."""
