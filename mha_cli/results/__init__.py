"""What a run produces: plain records (no torch) that renderers read, and the reports the Python
API returns, which show themselves as tables in a terminal or a notebook."""
