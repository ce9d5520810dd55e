"""The layer's dataflow as a picture: a pure model built from the stage records (model.py),
drawn by matplotlib (image.py) or in the terminal (terminal.py)."""

# Where this picture comes from, against the book's figure (the readers ask what drew that).
ORIGIN = (
    "d2l's figure of multi-head attention was drawn by hand (in OmniGraffle) and shows no "
    "shapes; this diagram is generated from a run of the layer (traced on the meta device), so "
    "every arrow carries this configuration's shape and axes"
)
