"""compare.py's figure draws the decision regions of every 2-D set, a user's 2-D file included."""

from __future__ import annotations

import numpy as np
import pytest

from mlp_lightning.analysis import figures
from mlp_lightning.analysis.compare import compare_runs
from mlp_lightning.analysis.logged_run import load_run
from mlp_lightning.core.data import load_splits
from mlp_lightning.core.datasets import make_circles
from tests.helpers import run_numpy

SETS = {
    "moons": ["--dataset", "moons"],
    "circles_3": ["--dataset", "circles", "--num_classes", "3"],
    "spirals": ["--dataset", "spirals"],
    "file": ["--data", "{file}"],
}
QUICK = ("circles_3", "file")  # three classes, and a user's file; the others in the slow suite


@pytest.mark.parametrize("name", [n if n in QUICK else pytest.param(n, marks=pytest.mark.slow) for n in SETS])
def test_the_figure_draws_each_sets_boundaries_over_its_validation_points(
    name, tmp_path, monkeypatch, capsys
):
    X, y = make_circles(40, 2, 0.1, seed=1)
    np.savez(tmp_path / "rings.npz", X=X, y=y)
    argv = [a.format(file=tmp_path / "rings.npz") for a in SETS[name]] + ["--max_epochs", "2"]
    runs = [run_numpy(argv, tmp_path / "logs") for _ in range(2)]
    drawn = {}
    original = figures.comparison_figure
    monkeypatch.setattr(figures, "comparison_figure", lambda *a, **kw: drawn.update(kw) or original(*a, **kw))
    assert compare_runs(*runs, out=tmp_path / "figs") == 0
    assert "no decision boundaries" not in capsys.readouterr().out
    _, _, Xva, yva = load_splits(load_run(runs[0]).typed_hparams())
    assert np.array_equal(drawn["val_data"][0], Xva) and np.array_equal(drawn["val_data"][1], yva)
    assert all(w["W1"].shape[0] == 2 for w in drawn["weights"])
    png = next((tmp_path / "figs").glob("*.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_grid_spans_the_points_at_any_scale():
    weights = {"W1": np.eye(2, dtype=np.float32), "b2": np.zeros(2)}
    for scale in (0.01, 1.0, 100.0):
        X = scale * np.array([[-1.0, -2.0], [1.0, 2.0]])
        xx, yy, _ = figures.decision_grid(weights, lambda w, P: P, X)
        assert xx.min() < -scale and xx.max() > scale and yy.min() < -2 * scale
        assert xx.max() - xx.min() < 2 * scale * 1.5  # a margin relative to the extent, not absolute
