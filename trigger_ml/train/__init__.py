"""Stage 2, train: quantization-aware training and pruning of the models in models/.

TensorFlow is told to use one inter-op thread before it is imported: with more, hgq2's
in-graph range tracking races and the same seed no longer gives the same weights.
"""

import os

os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
