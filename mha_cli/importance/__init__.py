"""Head importance (`mha heads`): the output rerun without each head (ablation.py,
head_importance.py), its records, report and renderers."""
