"""trigger-ml: quantization-aware Keras models to bit-exact FPGA Level-1 trigger firmware."""

__version__ = "0.1.0"
