"""The reference notebook's NumPy code, copied as it is (flaws included), as the speed reference.

Kept faithful on purpose: ``one_hot`` builds float64 targets, so ``dlogits`` and the
backward GEMMs run in float64; ``relu_grad`` and ``softmax`` allocate per call; the
weight decay is added in place to the gradients. The notebook has no dropout. Only
``train_epoch`` is new: the body of the notebook's training loop, over given arrays,
so the benchmark can time one training epoch at any size.
"""

# ruff: noqa
import numpy as np


# ----- utils -----
def one_hot(y, C):
    Y = np.zeros((y.size, C))
    Y[np.arange(y.size), y] = 1
    return Y


def softmax(logits):
    z = logits - np.max(logits, axis=1, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=1, keepdims=True)


def relu(x):
    return np.maximum(0, x)


def relu_grad(x):
    return (x > 0).astype(x.dtype)


def ce_loss(probs, Y_true_onehot):
    # mean NLL
    eps = 1e-12
    return -np.mean(np.sum(Y_true_onehot * np.log(probs + eps), axis=1))


# ----- mini-batch iterator -----
def iterate_minibatches(X, y, batch_size, shuffle=True, rng=None):
    N = len(X)
    idx = np.arange(N)

    if shuffle:
        rng = np.random.default_rng() if rng is None else rng
        rng.shuffle(idx)

    for start in range(0, N, batch_size):
        sl = idx[start : start + batch_size]
        yield X[sl], y[sl]


# ----- model -----
class TwoLayerMLP:
    def __init__(self, D_in, H, D_out, seed=0):
        rng = np.random.default_rng(seed)
        self.W1 = rng.normal(0, 0.02, size=(D_in, H)).astype(np.float32)
        self.b1 = np.zeros(H, dtype=np.float32)
        self.W2 = rng.normal(0, 0.02, size=(H, D_out)).astype(np.float32)
        self.b2 = np.zeros(D_out, dtype=np.float32)

    def forward(self, X):
        # cache for backprop
        self.X = X  # (B, D_in)
        self.z1 = X @ self.W1 + self.b1  # (B, H)
        self.h = relu(self.z1)  # (B, H)
        self.logits = self.h @ self.W2 + self.b2  # (B, D_out)
        self.probs = softmax(self.logits)  # (B, D_out)
        return self.probs

    def backward(self, Y_onehot):
        B = Y_onehot.shape[0]
        # dL/dlogits = (p - y)/B  (softmax + CE)
        dlogits = (self.probs - Y_onehot) / B  # (B, C)
        dW2 = self.h.T @ dlogits  # (H, C)
        db2 = np.sum(dlogits, axis=0)  # (C,)
        dh = dlogits @ self.W2.T  # (B, H)
        dz1 = dh * relu_grad(self.z1)  # (B, H)
        dW1 = self.X.T @ dz1  # (D, H)
        db1 = np.sum(dz1, axis=0)  # (H,)
        return dW1, db1, dW2, db2

    def step(self, grads, lr=1e-1, weight_decay=0.0):
        dW1, db1, dW2, db2 = grads
        # L2 weight decay (classic)
        if weight_decay != 0.0:
            dW1 += weight_decay * self.W1
            dW2 += weight_decay * self.W2
        self.W1 -= lr * dW1
        self.b1 -= lr * db1
        self.W2 -= lr * dW2
        self.b2 -= lr * db2

    def predict(self, X):
        z1 = relu(X @ self.W1 + self.b1)
        logits = z1 @ self.W2 + self.b2
        return np.argmax(softmax(logits), axis=1)


def train_epoch(model, Xtr, ytr, batch_size, lr, wd, num_classes=2):
    """One training epoch exactly as the notebook's ``train()`` runs it."""
    for Xb, yb in iterate_minibatches(Xtr, ytr, batch_size, shuffle=True):
        Yb = one_hot(yb, num_classes)
        probs = model.forward(Xb)
        grads = model.backward(Yb)
        model.step(grads, lr=lr, weight_decay=wd)
