"""The facts both trainers share, in NumPy: hyperparameters, seeds, data, weights, metric names, console."""
