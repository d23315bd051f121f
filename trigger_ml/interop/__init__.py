"""Foreign model formats in and out: ONNX/QONNX and legacy (Keras 2) QKeras."""
