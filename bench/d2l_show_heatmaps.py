"""d2l's `show_heatmaps` (d2l/torch.py), the anchor both heatmap benchmarks compare against.

One pyplot subplot and one `imshow` per panel, one colorbar; the Agg backend and `savefig`
stand in for the notebook display. Kept in one place so both benchmarks time the same code.
"""

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # after matplotlib.use: the backend must be chosen first


def show_heatmaps(matrices, xlabel, ylabel, titles=None, figsize=(2.5, 2.5), cmap="Reds"):  # type: ignore[no-untyped-def]
    num_rows, num_cols = len(matrices), len(matrices[0])
    fig, axes = plt.subplots(
        num_rows, num_cols, figsize=figsize, sharex=True, sharey=True, squeeze=False
    )
    for i, (row_axes, row_matrices) in enumerate(zip(axes, matrices, strict=True)):
        for j, (ax, matrix) in enumerate(zip(row_axes, row_matrices, strict=True)):
            pcm = ax.imshow(matrix, cmap=cmap)
            if i == num_rows - 1:
                ax.set_xlabel(xlabel)
            if j == 0:
                ax.set_ylabel(ylabel)
            if titles:
                ax.set_title(titles[j])
    fig.colorbar(pcm, ax=axes, shrink=0.6)
    return fig
