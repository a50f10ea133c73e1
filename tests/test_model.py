"""The raw-Parameter MLP and its LightningModule."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlp_lightning.core.weights import PARAM_NAMES, init_weights
from mlp_lightning.lightning.lit_module import MLPClassifier
from mlp_lightning.lightning.model import TwoLayerMLP


def test_weights_are_raw_parameters_with_the_twins_layout_and_values():
    w = init_weights(3, 8, 4, seed=1)
    model = TwoLayerMLP(w, dropout=0.5)
    assert [n for n, _ in model.named_parameters()] == list(PARAM_NAMES)
    assert model.W1.shape == (3, 8) and model.W2.shape == (8, 4)
    for name in PARAM_NAMES:
        assert np.array_equal(model.numpy_weights()[name], w[name])
    model.W1.data.add_(1.0)
    assert not np.array_equal(w["W1"], model.numpy_weights()["W1"]), "must not alias the caller's array"


def test_forward_computes_relu_mlp_logits():
    w = init_weights(3, 8, 4, seed=1)
    w["b1"][:] = 0.1
    model = TwoLayerMLP(w, dropout=0.5).eval()
    x = torch.randn(5, 3)
    expected = np.maximum(x.numpy() @ w["W1"] + w["b1"], 0) @ w["W2"] + w["b2"]
    np.testing.assert_allclose(model(x).detach().numpy(), expected, rtol=1e-5, atol=1e-7)


def test_dropout_acts_only_in_training_mode():
    torch.manual_seed(0)
    model = TwoLayerMLP(init_weights(4, 256, 2, seed=0), dropout=0.5)
    x = torch.randn(64, 4)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))
    model.dropout = 0.0
    assert torch.equal(model(x), model.eval()(x))


@pytest.mark.parametrize("num_classes", [2, 5])
def test_loss_at_initialisation_is_about_ln_c(num_classes):
    module = MLPClassifier(dim=2, hidden_dim=32, num_classes=num_classes, dropout=0.0)
    x = torch.randn(512, 2)
    y = torch.randint(0, num_classes, (512,))
    loss = F.cross_entropy(module(x), y).item()
    assert loss == pytest.approx(math.log(num_classes), rel=0.02)


def test_model_overfits_twenty_examples():
    torch.manual_seed(0)
    module = MLPClassifier(dim=5, hidden_dim=64, num_classes=3, dropout=0.0, lr=0.5, weight_decay=0.0)
    x, y = torch.randn(20, 5), torch.randint(0, 3, (20,))
    opt = module.configure_optimizers()
    for _ in range(500):
        opt.zero_grad()
        loss = F.cross_entropy(module(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.01
    assert torch.equal(module(x).argmax(1), y)


def test_weight_decay_applies_to_the_weights_but_not_the_biases():
    module = MLPClassifier(dim=2, hidden_dim=4, num_classes=2, lr=0.1, weight_decay=0.5)
    groups = module.configure_optimizers().param_groups
    decayed = {id(p) for g in groups if g["weight_decay"] == 0.5 for p in g["params"]}
    plain = {id(p) for g in groups if g["weight_decay"] == 0.0 for p in g["params"]}
    m = module.model
    assert decayed == {id(m.W1), id(m.W2)} and plain == {id(m.b1), id(m.b2)}
    assert all(g["lr"] == 0.1 for g in groups)


def test_hyperparameters_are_saved_as_plain_types():
    expected = {"dim": 3, "hidden_dim": 16, "num_classes": 2, "dropout": 0.25, "lr": 0.05}
    expected |= {"weight_decay": 0.0, "seed": 9}
    module = MLPClassifier(**expected)
    assert dict(module.hparams) == expected
    assert all(type(v) in (int, float) for v in module.hparams.values())
