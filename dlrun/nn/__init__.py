"""Building blocks of the notes: activations, losses, initializers, regularizers, optimizers."""
