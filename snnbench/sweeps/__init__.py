"""Default benchmark sweeps, shipped as package data (read with ``importlib.resources``)."""
