"""Attention weights as heatmaps (`mha heatmap`): the plotted data (plot_data.py, data.py), the
grid's layout and decorations, drawn by matplotlib (image.py) or in the terminal (terminal.py)."""
