"""Real tables as users bring them: class names, --target and --drop, separators, quoting, the fast path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlp_lightning.cli import parse_numpy_args
from mlp_lightning.core import csv_table
from mlp_lightning.core.data_file import read_data_file
from mlp_lightning.core.errors import ConfigError
from mlp_lightning.core.hparams import HParams
from mlp_lightning.runs.files import stored_hparams
from tests.helpers import REPO, run_script

IRIS = (
    "id,sepal_length,petal_length,species\n"
    "1,5.1,1.4,setosa\n2,7.0,4.7,versicolor\n3,6.3,6.0,virginica\n4,4.9,1.4,setosa\n"
    "5,6.4,4.5, versicolor \n6,5.8,5.1,virginica\n"
)


def write(tmp_path: Path, text: str | bytes, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def refusal(path: Path, **columns) -> str:
    with pytest.raises(ConfigError) as err:
        read_data_file(path, **columns)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_text_classes_are_the_sorted_names_and_y_indexes_them(tmp_path):
    got = read_data_file(write(tmp_path, IRIS))  # the class is the last column; id is a feature here
    assert got.class_names == ("setosa", "versicolor", "virginica")
    assert got.y.tolist() == [0, 1, 2, 0, 1, 2] and got.y.dtype == np.int64
    assert got.feature_names == ("id", "sepal_length", "petal_length") and got.num_classes == 3


@pytest.mark.parametrize(
    "labels, names, y",
    [
        ("0 1 0 1", ("0", "1"), [0, 1, 0, 1]),  # 0..C-1 map to themselves
        ("1 2 3 1", ("1", "2", "3"), [0, 1, 2, 0]),  # a wine table's classes
        ("0 1 3 3", ("0", "1", "3"), [0, 1, 2, 2]),  # a class with no points is no gap
        ("-1 1 1.0 -1", ("-1", "1"), [0, 1, 1, 0]),
        ("10 9 10 9", ("9", "10"), [1, 0, 1, 0]),  # numeric order, not text order
    ],
)
def test_integer_classes_are_the_distinct_integers_in_numeric_order(labels, names, y, tmp_path):
    rows = "".join(f"{i}.5,{c}\n" for i, c in enumerate(labels.split()))
    got = read_data_file(write(tmp_path, "x1,label\n" + rows))
    assert got.class_names == names and got.y.tolist() == y


def test_target_names_the_class_column_and_drop_leaves_the_id_out(tmp_path):
    text = "id,class,a,b\n" + "".join(f"{i},{'ab'[i % 2]},{i}.25,{-i}\n" for i in range(6))
    got = read_data_file(write(tmp_path, text), target="class", drop=("id",))
    assert got.feature_names == ("a", "b") and got.class_names == ("a", "b")
    assert got.X.tolist() == [[i + 0.25, -i] for i in range(6)] and got.y.tolist() == [0, 1] * 3


@pytest.mark.parametrize(
    "columns, message",
    [
        (
            {"target": "specis"},
            "--target 'specis' is not a column (did you mean 'species'?); the columns: 'id', ",
        ),
        ({"drop": ("ID",)}, "--drop 'ID' is not a column (did you mean 'id'?)"),
        ({"drop": ("species",)}, "--drop 'species' is the class column (--target): drop only features"),
        (
            {"drop": ("id", "sepal_length", "petal_length")},
            "--drop leaves no feature column (the class column is 'species')",
        ),
    ],
)
def test_a_bad_column_choice_is_refused_naming_the_columns(columns, message, tmp_path):
    assert message in refusal(write(tmp_path, IRIS), **columns)


def test_a_wide_header_is_listed_in_part(tmp_path):
    header = ",".join(f"g{j}" for j in range(2000))
    text = refusal(write(tmp_path, header + "\n" + ",".join(["1"] * 2000) + "\n"), target="nope")
    assert text.endswith(
        "the columns: 'g0', 'g1', 'g2', 'g3', 'g4', 'g5', 'g6', 'g7', 'g8', 'g9', ... (2000 in all)"
    )


def test_a_header_naming_a_column_twice_is_refused(tmp_path):
    message = refusal(write(tmp_path, "a,b,a,label\n1,2,3,0\n4,5,6,1\n"))
    assert "the header names 'a' twice (columns 1 and 3); columns are chosen by name" in message


def test_target_and_drop_are_refused_for_an_npz(tmp_path):
    np.savez(tmp_path / "p.npz", X=np.zeros((2, 2)), y=np.array([0, 1]))
    assert "--target names a .csv's columns; a .npz holds X and y" in refusal(tmp_path / "p.npz", target="y")
    assert "--drop names a .csv's columns" in refusal(tmp_path / "p.npz", drop=("a",))


def test_an_npz_may_hold_class_names_and_feature_names(tmp_path):
    X = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.savez(tmp_path / "p.npz", X=X, y=np.array(["cat", "ant", "cat"]), feature_names=np.array(["w", "h"]))
    got = read_data_file(tmp_path / "p.npz")
    assert (
        got.class_names == ("ant", "cat") and got.y.tolist() == [1, 0, 1] and got.feature_names == ("w", "h")
    )
    np.savez(tmp_path / "q.npz", X=X, y=np.array([3, 5, 3]))
    assert read_data_file(tmp_path / "q.npz").feature_names == ("x1", "x2")


@pytest.mark.parametrize(
    "text",
    [
        "x1;x2;label\n0.5;1.0;a\n-1.0;2.0;b\n",  # semicolons
        "x1\tx2\tlabel\n0.5\t1.0\ta\n-1.0\t2.0\tb\n",  # tabs
        '"x1","x2","label"\n"0.5",1.0,"a"\n-1.0,"2.0",b\n',  # quoted fields
        "x1,x2,label\r\n0.5,1.0,a\r\n\r\n-1.0,2.0,b",  # CRLF, a blank line, no final newline
        "\ufeffx1,x2,label\n0.5,1.0,a\n-1.0,2.0,b\n",  # a UTF-8 byte order mark
    ],
    ids=["semicolon", "tab", "quoted", "crlf", "bom"],
)
def test_separators_quotes_line_endings_and_a_bom_read_the_same(text, tmp_path):
    got = read_data_file(write(tmp_path, text))
    assert got.X.tolist() == [[0.5, 1.0], [-1.0, 2.0]] and got.y.tolist() == [0, 1]
    assert got.feature_names == ("x1", "x2") and got.class_names == ("a", "b")


def test_a_semicolon_file_with_decimal_commas_reads_as_its_decimal_point_twin(tmp_path):
    """A spreadsheet's export where the comma is the decimal mark: ``;`` between columns, ``1,5``."""
    rng = np.random.default_rng(5)
    values = rng.normal(scale=10.0 ** rng.integers(-4, 5, size=(200, 3)), size=(200, 3))
    rows = [[*(f"{v:.9g}" for v in row), ("ja", "nein")[k % 2]] for k, row in enumerate(values)]
    point = write(tmp_path, "a;b;c;klasse\n" + "".join(";".join(r) + "\n" for r in rows), "point.csv")
    comma = write(tmp_path, point.read_text().replace(".", ","), "comma.csv")
    expected = read_data_file(point)
    for path in (comma, point):
        got = read_data_file(path)
        assert got.X.tobytes() == expected.X.tobytes() and got.class_names == ("ja", "nein")
    fast, _ = csv_table._fast(comma, ";", 1, 4, [0, 1, 2], 3)
    slow, _, _ = csv_table._slow(comma, "", ";", ["a", "b", "c", "klasse"], [0, 1, 2], 3)
    assert fast.tobytes() == slow.tobytes() == expected.X.tobytes()


def test_a_missing_value_is_named_as_one_not_as_a_text_column(tmp_path):
    message = refusal(write(tmp_path, "a,b,label\n1,NA,x\n2,3,y\n"))
    assert "row 2, column 2 ('b'): 'NA' is not a number; a missing value" in message
    assert "--drop" not in message  # a column of numbers with a gap is not a column of names


def test_a_quoted_separator_stays_in_its_field(tmp_path):
    got = read_data_file(write(tmp_path, 'x1,"name, long",label\n1,2,"a, b"\n3,4,c\n'), drop=("name, long",))
    assert got.class_names == ("a, b", "c") and got.X.tolist() == [[1.0], [3.0]]


def test_the_fast_and_slow_paths_read_a_random_file_as_python_floats_do(tmp_path):
    rng = np.random.default_rng(3)
    values = rng.normal(scale=10.0 ** rng.integers(-8, 9, size=(300, 3)), size=(300, 3))
    labels = rng.integers(0, 4, size=300)
    lines = [
        ",".join([*(repr(float(v)) for v in row), str(c)]) for row, c in zip(values, labels, strict=True)
    ]
    path = write(tmp_path, "a,b,c,label\n" + "\n".join(lines) + "\n")
    old = np.array([[np.float32(float(repr(float(v)))) for v in row] for row in values], np.float32)
    fast, fast_labels = csv_table._fast(path, ",", 1, 4, [0, 1, 2], 3)
    slow, slow_labels, rows = csv_table._slow(path, "", ",", ["a", "b", "c", "label"], [0, 1, 2], 3)
    assert fast.tobytes() == old.tobytes() and slow.tobytes() == old.tobytes()
    assert slow_labels.astype(int).tolist() == labels.tolist() == fast_labels.astype(int).tolist()
    assert rows.tolist() == list(range(2, 302))
    assert read_data_file(path).y.tolist() == labels.tolist()


def test_drop_takes_several_names_after_one_flag_or_a_config_list(tmp_path):
    path = write(tmp_path, IRIS)
    logdir = ["--logdir", str(tmp_path / "logs")]
    hp = parse_numpy_args(
        ["--data", str(path), "--drop", "id", "petal_length", "--target", "species", *logdir]
    ).hp
    assert hp.drop == ("id", "petal_length") and hp.dim == 1 and hp.num_classes == 3
    assert parse_numpy_args(["--data", str(path), "--drop", "id", *logdir]).hp.drop == ("id",)
    config = tmp_path / "c.yaml"
    config.write_text("drop: [id, petal_length]\n")
    assert parse_numpy_args(["--data", str(path), "--config", str(config), *logdir]).hp.dim == 1


def test_the_column_flags_round_trip_through_stored_hyperparameters(tmp_path):
    hp = HParams(data="t.csv", dataset="file", data_points=10, target="species", drop=["id"])
    assert hp.drop == ("id",) and HParams(**hp.as_dict()) == hp
    stored = yaml.safe_load(yaml.safe_dump(hp.as_dict()))  # as hparams.yaml holds it
    assert stored["drop"] == ["id"] and stored_hparams(stored, tmp_path / "hparams.yaml") == hp


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--target", "species"], "--target needs --data: it names columns of a .csv file"),
        (["--drop", "id"], "--drop needs --data: it names columns of a .csv file"),
        (
            ["--data", "{iris}", "--target", "specis"],
            "--target 'specis' is not a column (did you mean 'species'?)",
        ),
    ],
)
def test_the_scripts_refuse_bad_columns_in_one_line_before_torch(flags, message, tmp_path):
    iris = write(tmp_path, IRIS)
    argv = [flag.format(iris=iris) for flag in flags] + ["--logdir", str(tmp_path / "logs")]
    probe = (
        "import sys\nfrom mlp_lightning.cli import parse_fit_args\n"
        f"try:\n    parse_fit_args({argv!r})\n"
        "except SystemExit as e:\n    print(e.code, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.stdout.strip() == "2 False" and len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith("fit.py: error: ") and message in out.stderr
    assert not (tmp_path / "logs").exists()


def test_the_twin_trains_on_a_table_with_an_id_and_named_classes(tmp_path):
    rng = np.random.default_rng(0)
    names = ["setosa", "versicolor", "virginica"]
    rows = [f"{i},{names[i % 3]},{rng.normal() + i % 3:.4f},{rng.normal():.4f}" for i in range(60)]
    path = write(tmp_path, "id,species,a,b\n" + "\n".join(rows) + "\n")
    flags = ["--data", str(path), "--target", "species", "--drop", "id", "--max_epochs", "2"]
    result = run_script("baseline_numpy.py", *flags, "--logdir", str(tmp_path / "logs"))
    assert result.returncode == 0, result.stderr
    stored = yaml.safe_load((tmp_path / "logs/numpy/version_0/hparams.yaml").read_text())
    assert (stored["target"], stored["drop"], stored["dim"], stored["num_classes"]) == (
        "species",
        ["id"],
        2,
        3,
    )
