"""Building blocks of the lecture notes: activations, losses, initializers, regularizers, optimizers."""
