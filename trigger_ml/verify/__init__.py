"""The verify stage: every level of a model behind the same `predict(x)`; see `levels.py`."""
