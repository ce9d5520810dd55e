"""Per-head circuits from the weights alone (`mha weights`): W_q W_k^T and W_v W_o per head
(circuits.py, head_slices.py, head_weights.py), their records, report and renderers."""
