"""The NumPy twin: the same two-layer MLP, loss, optimizer and metrics as the Lightning
side, written out by hand over float32 arrays. Imports neither torch nor lightning.

``model`` holds the math (forward, cross-entropy, backward, SGD update), ``step`` one
training step and one evaluation pass over preallocated buffers, ``events`` the
TensorBoard event file, ``train`` the loop that ties them to the shared data.
"""
