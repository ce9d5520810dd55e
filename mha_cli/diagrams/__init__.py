"""The layer's dataflow as a picture: a pure model built from the stage records (model.py),
drawn by matplotlib (image.py) or in the terminal (terminal.py)."""

# Where this picture comes from, against the book's figure (the readers ask what drew that).
# Two lines, short enough for the image's footer.
ORIGIN = (
    "d2l's figure of this layer was drawn by hand (in OmniGraffle) and shows no shapes;",
    "this diagram is generated from a run of the layer: every arrow has this run's shape",
)
