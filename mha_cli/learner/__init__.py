"""A learner's own code: the file loaded (user_code.py), the module built and called
(user_module.py, user_inputs.py), its weights converted to d2l's names (module_weights.py)."""
