"""snnbench: a Triton-accelerated benchmark suite for spiking neural networks."""

__version__ = "0.1.0"
