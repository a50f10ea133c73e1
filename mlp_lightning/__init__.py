"""A two-layer MLP trained with PyTorch Lightning, beside a from-scratch NumPy twin.

Importing the package imports neither torch nor lightning: the NumPy twin and the
command line depend on that. Import the torch modules by their full names
(``mlp_lightning.lightning.lit_module``, ``mlp_lightning.lightning.datamodule``, ...).
"""

__version__ = "0.1.0"
