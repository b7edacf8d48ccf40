"""Hydra config root (a package so that the configs travel inside the wheel)."""
