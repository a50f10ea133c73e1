"""A user's table end to end: standardized by its training split, class names kept with every model,
new rows predicted by column name, both trainers computing the same thing on it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlp_lightning.analysis.compare import LOSS_TOLERANCE
from mlp_lightning.analysis.evaluate import evaluate_model, evaluation_points, locate
from mlp_lightning.analysis.export import checkpoint_to_npz, load_model_npz
from mlp_lightning.analysis.logged_run import load_run, max_differences
from mlp_lightning.core.columns import columns_from_arrays, plain_columns, standardization
from mlp_lightning.core.data import load_run_data, make_points
from mlp_lightning.core.errors import ConfigError, WeightsError
from mlp_lightning.core.tensorboard_schema import TRAIN_ACC, TRAIN_LOSS, VAL_ACC, VAL_LOSS
from mlp_lightning.runs.layout import HPARAMS_FILE
from tests.helpers import run_both, run_script, script_main

CLASSES = ("setosa", "versicolor", "virginica")  # as iris names them; sorted, so label k is CLASSES[k]
FEATURES = ("sepal_length", "petal_length", "petal_width")


def write_table(path: Path, n: int = 90, seed: int = 0) -> Path:
    """An iris-like table: an id first, features on scales 1e-2..1e3, the class by name last."""
    rng = np.random.default_rng(seed)
    label = np.arange(n) % 3
    X = rng.normal(size=(n, 3)) + 3.0 * label[:, None]  # (n, 3): separable once scaled
    X *= np.array([1000.0, 1.0, 0.01])
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", *FEATURES, "species"])
        writer.writerows(
            [f"r{i}", *(repr(float(v)) for v in x), CLASSES[c]]
            for i, (x, c) in enumerate(zip(X, label, strict=True))
        )
    return path


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    return write_table(tmp_path_factory.mktemp("data") / "flowers.csv")


@pytest.fixture(scope="module")
def runs(table, tmp_path_factory) -> tuple[Path, Path]:
    """(twin run, Lightning run) on the table at --dropout 0, the plain command otherwise."""
    flags = ["--data", str(table), "--drop", "id", "--dropout", "0"]
    return run_both(flags, tmp_path_factory.mktemp("logs"))


def file_hparams(table: Path):
    from mlp_lightning.cli import parse_numpy_args

    return parse_numpy_args(["--data", str(table), "--drop", "id"]).hp


def test_standardization_comes_from_the_training_split_alone(table):
    hp = file_hparams(table)
    assert hp.standardize  # the default for a --data file
    Xtr, _, Xva, _, columns = load_run_data(hp)
    raw, _ = make_points(hp)
    n_train = len(Xtr)
    mean = raw[:n_train].mean(axis=0, dtype=np.float64).astype(np.float32)
    std = raw[:n_train].std(axis=0, dtype=np.float64).astype(np.float32)
    assert np.array_equal(columns.mean, mean) and np.array_equal(columns.scale, std)
    # the validation points are scaled by the training split's statistics, not their own
    assert np.array_equal(Xva, (raw[n_train:] - mean) / std)
    np.testing.assert_allclose(Xtr.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(Xtr.std(axis=0), 1.0, atol=1e-5)
    assert columns.feature_names == FEATURES and columns.class_names == CLASSES


def test_a_constant_feature_is_centred_and_left_unscaled():
    X = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]], dtype=np.float32)
    mean, scale = standardization(X)
    assert mean.tolist() == [3.0, 5.0] and scale[1] == 1.0 and scale[0] == np.float32(np.sqrt(8 / 3))
    assert np.all(plain_columns(2, 2).scaled(X) == X)  # unscaled columns leave points as they are


def test_standardize_false_keeps_the_files_own_values(table):
    from mlp_lightning.cli import parse_numpy_args

    hp = parse_numpy_args(["--data", str(table), "--drop", "id", "--standardize", "false"]).hp
    Xtr, _, _, _, columns = load_run_data(hp)
    assert not columns.standardized and np.array_equal(Xtr, make_points(hp)[0][: len(Xtr)])


def test_both_trainers_agree_exactly_on_a_standardized_table_with_named_classes(runs):
    a, b = (load_run(r) for r in runs)
    assert a.hparams == b.hparams and a.hparams["standardize"] is True
    worst = max_differences(a, b)
    assert worst[TRAIN_LOSS] <= LOSS_TOLERANCE and worst[VAL_LOSS] <= LOSS_TOLERANCE, worst
    np.testing.assert_array_equal(a.scalars[TRAIN_ACC], b.scalars[TRAIN_ACC])
    np.testing.assert_array_equal(a.scalars[VAL_ACC], b.scalars[VAL_ACC])
    assert a.scalars[VAL_ACC][-1] >= 0.9  # scaled, the table is learned


def test_a_table_run_records_its_class_names_and_column_and_no_generated_set_flag(runs):
    for run_dir in runs:
        stored = yaml.safe_load((run_dir / HPARAMS_FILE).read_text())
        assert stored["class_names"] == list(CLASSES) and stored["target"] == "species"
        assert stored["drop"] == ["id"] and stored["dataset"] == "file"
        assert not {"n_per_class", "offset", "noise"} & set(stored)


@pytest.mark.parametrize("trainer", [0, 1], ids=["numpy", "lightning"])
def test_every_model_file_carries_its_scaling_and_names(runs, trainer, table):
    model = locate(runs[trainer])
    expected = load_run_data(file_hparams(table))[4]
    assert model.columns.same_as(expected)


@pytest.mark.parametrize("trainer", [0, 1], ids=["numpy", "lightning"])
def test_evaluating_a_table_run_on_its_split_reproduces_its_logged_metrics(runs, trainer):
    model = locate(runs[trainer])
    result = evaluate_model(model, evaluation_points(model, None, {}))
    run = load_run(runs[trainer])
    assert np.float32(result.loss) == np.float32(run.scalars[VAL_LOSS][-1])
    assert np.float32(result.acc) == np.float32(run.scalars[VAL_ACC][-1])


def test_new_rows_are_read_by_column_name_in_any_order_without_a_class_column(runs, table, tmp_path):
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    reordered = tmp_path / "new.csv"
    with open(reordered, "w", newline="") as f:  # other order, an extra column, no class column
        writer = csv.writer(f)
        writer.writerow(["petal_width", "note", "petal_length", "sepal_length"])
        writer.writerows([r["petal_width"], "x", r["petal_length"], r["sepal_length"]] for r in rows)
    for run_dir in runs:
        model = locate(run_dir)
        new = evaluate_model(model, evaluation_points(model, str(reordered), {}))
        whole = evaluate_model(model, evaluation_points(model, str(table), {}))
        assert new.y is None and new.loss is None
        assert np.array_equal(new.probs, whole.probs)  # the same rows, whatever the file's layout
        assert whole.y is not None and whole.acc >= 0.9


def test_the_scripts_predictions_name_the_classes(runs, table, tmp_path):
    out = tmp_path / "pred.csv"  # the twin's model: evaluate.py answers with NumPy alone
    result = run_script("evaluate.py", str(runs[0]), "--data", str(table), "--predictions", str(out))
    assert result.returncode == 0, result.stderr
    assert "\nloss " in result.stdout and "val loss" not in result.stdout  # not the validation split
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["id", "label", "predicted", *(f"p_{name}" for name in CLASSES)]
    assert {r["label"] for r in rows} == set(CLASSES) and {r["predicted"] for r in rows} <= set(CLASSES)


def test_predictions_carry_the_rows_ids_the_run_left_out_so_they_match_rows_by_id(runs, table, tmp_path):
    shuffled, out = tmp_path / "new.csv", tmp_path / "pred.csv"
    with open(table, newline="") as f:
        header, *rows = list(csv.reader(f))
    rows = rows[::-1][:30]  # other rows, in another order, ids of any form
    rows[0][0] = "007"  # written as text: not read as the number 7
    with open(shuffled, "w", newline="") as f:
        csv.writer(f).writerows([header[::-1], *(row[::-1] for row in rows)])  # columns reversed too
    result = run_script("evaluate.py", str(runs[0]), "--data", str(shuffled), "--predictions", str(out))
    assert result.returncode == 0, result.stderr
    assert "(first id, from the file)" in result.stdout
    with open(out, newline="") as f:
        predicted = list(csv.DictReader(f))
    assert [p["id"] for p in predicted] == [row[0] for row in rows] and predicted[0]["id"] == "007"
    assert [p["label"] for p in predicted] == [row[-1] for row in rows]


def test_keep_chooses_the_carried_columns_and_refuses_one_the_file_lacks(runs, table, tmp_path, capsys):
    evaluate = script_main("evaluate.py")  # in this process: the twin's model needs NumPy alone
    out = tmp_path / "pred.csv"
    base = [str(runs[0]), "--data", str(table), "--predictions", str(out)]
    assert evaluate([*base, "--keep", "species", "id"]) == 0
    assert out.read_text().splitlines()[0].startswith("species,id,label,predicted,")
    assert evaluate([*base, "--keep"]) == 0 and out.read_text().startswith("label,predicted,")
    before, labelled = out.read_bytes(), tmp_path / "labelled.csv"
    with open(table, newline="") as f:
        header, *rows = list(csv.reader(f))
    with open(labelled, "w", newline="") as f:  # a column named as one the predictions write
        csv.writer(f).writerows([[*header, "label"], *([*row, "x"] for row in rows)])
    capsys.readouterr()
    for data, keep, words in (
        (table, "nope", "no column 'nope' to carry"),
        (labelled, "label", "the predictions have a column of that name already"),
    ):
        with pytest.raises(SystemExit) as ended:
            evaluate([str(runs[0]), "--data", str(data), "--predictions", str(out), "--keep", keep])
        err = capsys.readouterr().err
        assert ended.value.code == 2 and len(err.strip().splitlines()) == 1
        assert words in err and out.read_bytes() == before


def test_rows_whose_classes_the_model_never_saw_are_refused_naming_both_sets(runs, tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("sepal_length,petal_length,petal_width,species\n1,2,3,setosa\n4,5,6,rosa\n")
    model = locate(runs[0])
    with pytest.raises(
        ConfigError, match=r"class\(es\) 'rosa' the model does not know.*'setosa', 'versicolor'"
    ):
        evaluation_points(model, str(other), {})


def test_rows_missing_a_feature_column_are_refused_naming_it(runs, tmp_path):
    short = tmp_path / "short.csv"
    short.write_text("sepal_length,petal_length,species\n1,2,setosa\n")
    result = run_script("evaluate.py", str(runs[0]), "--data", str(short))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "no column 'petal_width'" in result.stderr


def test_the_four_line_numpy_serving_example_predicts_as_the_lightning_model(runs, table, tmp_path):
    npz = checkpoint_to_npz(runs[1] / "checkpoints" / "last.ckpt", tmp_path / "model.npz")
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    X = np.array([[float(r[name]) for name in FEATURES] for r in rows], dtype=np.float32)  # (N, D) raw
    # the example of docs/parity.md, line for line
    w = np.load(npz, allow_pickle=False)
    X = (X - w["feature_mean"]) / w["feature_scale"]
    logits = np.maximum(X @ w["W1"] + w["b1"], 0) @ w["W2"] + w["b2"]
    pred = w["class_names"][logits.argmax(axis=1)]
    model = locate(runs[1])
    lightning = evaluate_model(model, evaluation_points(model, str(table), {}))
    assert pred.tolist() == [CLASSES[k] for k in lightning.probs.argmax(axis=1)]


def test_a_weights_file_with_damaged_columns_is_refused_naming_the_array(runs, tmp_path):
    weights, columns = load_model_npz(runs[0] / "weights.npz")
    arrays = columns.as_arrays()
    for damage in (
        {"feature_scale": np.zeros(3, np.float32)},
        {"feature_mean": np.zeros(2, np.float32)},
        {"class_names": np.array(["a", "a", "b"])},
        {"feature_names": np.arange(3.0)},
    ):
        with pytest.raises(WeightsError):
            columns_from_arrays({**arrays, **damage}, "w.npz", dim=3, num_classes=3)
    partial = {k: v for k, v in arrays.items() if k != "class_names"}
    with pytest.raises(WeightsError, match="but not class_names"):
        columns_from_arrays(partial, "w.npz", dim=3, num_classes=3)


def test_a_text_column_left_in_the_features_is_refused_with_the_drop_that_leaves_it_out(table):
    result = run_script("baseline_numpy.py", "--data", str(table), "--logdir", str(table.parent / "logs"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "row 2, column 1 ('id'): 'r0' is not a number" in result.stderr
    assert "leave a text column out with --drop id" in result.stderr
    assert not (table.parent / "logs").exists()
