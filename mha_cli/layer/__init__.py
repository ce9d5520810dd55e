"""The layer and its run (`mha inspect`): d2l's MultiHeadAttention (layer.py), one recorded forward
pass (run.py, recording.py), the records and the Report (records.py, report.py), and the API
entry `mha_cli.inspect` (api.py). The torch core: the modules listed in pyproject.toml's
per-file-ignores import torch at module level; api.py, records.py, report.py do not."""
