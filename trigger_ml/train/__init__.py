"""Stage 2, train: quantization-aware training and pruning of the models in models/.

TensorFlow's thread settings (one inter-op thread: with more, hgq2's in-graph range tracking
races and the same seed no longer gives the same weights) are made in `trigger_ml/__init__.py`,
before anything imports TensorFlow.
"""

from trigger_ml import quiet_tensorflow

quiet_tensorflow()
