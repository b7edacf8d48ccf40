"""dlrun: a command-line deep-learning experiment runner (Hydra configs, one plain PyTorch loop)."""

__version__ = "0.1.0"
