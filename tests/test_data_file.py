"""--data PATH: a user's .npz or .csv trains both trainers; a bad file is refused in one line, naming it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlp_lightning.analysis.compare import LOSS_TOLERANCE
from mlp_lightning.analysis.logged_run import load_run, max_differences
from mlp_lightning.cli import parse_fit_args, parse_numpy_args
from mlp_lightning.core.data import load_splits
from mlp_lightning.core.data_file import read_data_file
from mlp_lightning.core.datasets import make_moons
from mlp_lightning.core.errors import ConfigError
from mlp_lightning.core.hparams import HParams
from mlp_lightning.core.seeds import data_rng
from mlp_lightning.core.tensorboard_schema import TRAIN_ACC, TRAIN_LOSS, VAL_ACC, VAL_LOSS
from mlp_lightning.runs.files import DATA_FLAGS_ADDED, stored_hparams
from tests.helpers import REPO, run_both, run_numpy, run_script


def write_csv(path: Path, X: np.ndarray, y: np.ndarray, header: str = "x1,x2,label") -> Path:
    rows = [header] + [
        ",".join([*(repr(float(v)) for v in x), str(int(c))]) for x, c in zip(X, y, strict=True)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def points() -> tuple[np.ndarray, np.ndarray]:
    return make_moons(60, 0.1, seed=5)  # (120, 2) float32, (120,) int64


def test_a_csv_and_an_npz_of_the_same_points_read_the_same(points, tmp_path):
    X, y = points
    np.savez(tmp_path / "p.npz", X=X, y=y)
    from_npz = read_data_file(tmp_path / "p.npz")
    from_csv = read_data_file(write_csv(tmp_path / "p.csv", X, y))
    for got in (from_npz, from_csv):
        assert got.X.dtype == np.float32 and got.y.dtype == np.int64
        assert got.X.tobytes() == X.tobytes() and np.array_equal(got.y, y)
        assert got.num_classes == 2 and len(got.sha256) == 64


def test_the_file_decides_dim_and_classes_and_the_run_records_its_path_and_hash(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(90, 3)).astype(np.float32), np.arange(90) % 3
    path = write_csv(tmp_path / "three.csv", X, y, header="a,b,c,class")
    hp = parse_numpy_args(["--data", str(path), "--logdir", str(tmp_path / "logs")]).hp
    assert (hp.dataset, hp.dim, hp.num_classes, hp.data_points) == ("file", 3, 3, 90)
    assert hp.data == str(path.absolute()) and hp.data_sha256 == read_data_file(path).sha256
    # shuffled once by the seed, then split as the generated sets are
    Xtr, ytr, Xva, yva = load_splits(hp)
    idx = data_rng(hp.seed).permutation(90)
    assert np.array_equal(np.concatenate([ytr, yva]), y[idx]) and len(Xva) == hp.n_val == 18


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--dim", "3"], "--dim 3 contradicts --data {path}, which has 2"),
        (["--num_classes", "3"], "--num_classes 3 contradicts --data {path}, which has 2"),
        (["--dataset", "moons"], "--dataset shapes a generated set; --data {path} brings its own points"),
        (
            ["--n_per_class", "10"],
            "--n_per_class shapes a generated set; --data {path} brings its own points",
        ),
    ],
)
def test_a_flag_the_file_decides_is_refused(flags, message, points, tmp_path, capsys):
    path = write_csv(tmp_path / "p.csv", *points)
    with pytest.raises(SystemExit) as exit_info:
        parse_fit_args(["--data", str(path), *flags, "--logdir", str(tmp_path / "logs")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == f"fit.py: error: {message.format(path=path)}"


def test_a_matching_dim_flag_is_accepted(points, tmp_path):
    path = write_csv(tmp_path / "p.csv", *points)
    assert parse_fit_args(["--data", str(path), "--dim", "2", "--logdir", str(tmp_path / "l")]).hp.dim == 2


GOOD = "x1,x2,label\n0.5,1.0,0\n-1.0,2.0,1\n"
# (file name, contents (str for text, bytes, or a dict of arrays for an .npz), what the one line says)
BAD_FILES = [
    ("absent.csv", None, "no such file"),
    ("empty.csv", "", "the file is empty (0 bytes)"),
    ("blank.csv", "\n\n", "the file has no rows"),
    ("header_only.csv", "x1,x2,label\n", "no data rows below the header"),
    ("no_header.csv", "0.5,1.0,0\n-1.0,2.0,1\n", "row 1 holds numbers, not column names"),
    ("one_column.csv", "label\n0\n1\n", "the header row has 1 column(s)"),
    ("ragged.csv", GOOD + "3.0,1\n", "row 4 has 2 columns, the header has 3"),
    ("text_cell.csv", GOOD + "3.0,abc,1\n", "row 4, column 2 ('x2'): 'abc' is not a number"),
    ("empty_cell.csv", GOOD + "1.0,2.0,0\n\n3.0,,1\n", "row 6, column 2 ('x2'): empty cell"),
    ("empty_class.csv", GOOD + "1.0,2.0, \n", "row 4, column 3 ('label'): empty cell"),
    ("nan_feature.csv", GOOD + "nan,1.0,0\n", "row 4, column 1 ('x1'): feature nan is not a finite float32"),
    ("inf_feature.csv", GOOD + "1.0,inf,0\n", "row 4, column 2 ('x2'): feature inf is not a finite float32"),
    ("huge_feature.csv", GOOD + "1e300,1.0,0\n", "row 4, column 1 ('x1'): feature 1e300 is not a finite"),
    (
        "fraction_label.csv",
        GOOD + "1.0,1.0,0.5\n",
        "row 4: label 0.5 is not an integer: a class column holds integers or names",
    ),
    ("nan_label.csv", GOOD + "1.0,1.0,nan\n", "row 4: label nan is not an integer"),
    (
        "one_class.csv",
        "x1,label\n0.5,0\n1.0,0\n",
        "column 2 ('label') has one value ('0'): at least 2 classes",
    ),
    ("one_name.csv", "x1,species\n0.5,setosa\n1.0, setosa\n", "has one value ('setosa'): at least 2 classes"),
    (
        "id_like.csv",
        "x1,id\n" + "".join(f"{i}.5,{i}\n" for i in range(30)),
        "column 2 ('id') has a different value in every one of its 30 rows: an id, not classes? name the "
        "class column with --target",
    ),
    ("semicolon_bad.csv", "x1;label\n1,5,2;0\n2;1\n", "'1,5,2' is not a number (columns separated by ';')"),
    ("binary.csv", b"\xff\xfe\x00bad", "not a text file (not UTF-8)"),
    ("late_binary.csv", GOOD.encode() + b"1.0,\xff,0\n", "not a text file (not UTF-8)"),
    ("table.txt", GOOD, "must be a .npz (X, y) or .csv (header row, class last) file"),
    ("not_zip.npz", "X,y\n", "not a .npz archive (truncated, or another format)"),
    ("no_y.npz", {"X": np.zeros((4, 2))}, "no array y (it holds ['X'])"),
    ("flat_x.npz", {"X": np.zeros(4), "y": np.array([0, 1, 0, 1])}, "X must be 2-D (points, features)"),
    ("short_y.npz", {"X": np.zeros((4, 2)), "y": np.array([0, 1])}, "y must be 1-D with one label per row"),
    ("text_x.npz", {"X": np.array([["a", "b"]] * 2), "y": np.array([0, 1])}, "X must hold real numbers"),
    (
        "bytes_y.npz",
        {"X": np.zeros((2, 2)), "y": np.array([b"a", b"b"])},
        "y must hold integer labels or class names (text), got dtype |S1",
    ),
    ("half_y.npz", {"X": np.zeros((2, 2)), "y": np.array([0.0, 0.5])}, "row 1 (0-based): label 0.5 is not"),
    ("no_points.npz", {"X": np.zeros((0, 2)), "y": np.zeros(0, int)}, "no points (0 rows)"),
    (
        "nan_x.npz",
        {"X": np.array([[0.0, 1.0], [np.nan, 0.0]]), "y": np.array([0, 1])},
        "row 1 (0-based), column 1",
    ),
    (
        "one_y.npz",
        {"X": np.zeros((3, 2)), "y": np.array([2, 2, 2])},
        "y has one value ('2'): at least 2 classes",
    ),
]


def make_file(tmp_path: Path, name: str, contents) -> Path:
    path = tmp_path / name
    if isinstance(contents, dict):
        with open(path, "wb") as f:
            np.savez(f, **contents)
    elif isinstance(contents, bytes):
        path.write_bytes(contents)
    elif contents is not None:
        path.write_text(contents)
    return path


@pytest.mark.parametrize("name, contents, message", BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_a_bad_file_is_refused_in_one_line_naming_it(name, contents, message, tmp_path):
    path = make_file(tmp_path, name, contents)
    with pytest.raises(ConfigError) as err:
        read_data_file(path)
    text = str(err.value)
    assert text.startswith(f"--data {str(path)!r}: ") and message in text and "\n" not in text


def test_a_good_file_of_the_same_shape_is_read(tmp_path):
    assert read_data_file(make_file(tmp_path, "good.csv", GOOD)).y.tolist() == [0, 1]


def test_too_few_points_for_the_split_are_refused(tmp_path, capsys):
    path = make_file(tmp_path, "two.csv", GOOD)
    with pytest.raises(SystemExit):
        parse_numpy_args(["--data", str(path), "--val_fraction", "0.1", "--logdir", str(tmp_path / "logs")])
    assert "leaves an empty split of 2 points (2 train, 0 val)" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["fit.py", "baseline_numpy.py"])
@pytest.mark.parametrize("case", ["ragged.csv", "nan_x.npz"])
def test_the_scripts_refuse_a_bad_file_before_writing_anything(script, case, tmp_path):
    name, contents, message = next(c for c in BAD_FILES if c[0] == case)
    path = make_file(tmp_path, name, contents)
    result = run_script(script, "--data", str(path), "--logdir", str(tmp_path / "logs"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"{script}: error: --data {str(path)!r}: ") and message in result.stderr
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())


@pytest.mark.slow  # the quick suite has it on a standardized table (test_table_runs.py) and with dropout
def test_a_csv_trains_both_trainers_the_same_at_dropout0(points, tmp_path):
    path = write_csv(tmp_path / "p.csv", *points)
    numpy_dir, lightning_dir = run_both(["--data", str(path), "--dropout", "0"], tmp_path / "logs")
    a, b = load_run(numpy_dir), load_run(lightning_dir)
    assert a.hparams == b.hparams and a.hparams["data"] == str(path.absolute())
    worst = max_differences(a, b)
    assert worst[TRAIN_LOSS] <= LOSS_TOLERANCE and worst[VAL_LOSS] <= LOSS_TOLERANCE, worst
    np.testing.assert_array_equal(a.scalars[TRAIN_ACC], b.scalars[TRAIN_ACC])
    np.testing.assert_array_equal(a.scalars[VAL_ACC], b.scalars[VAL_ACC])


def test_a_resume_refuses_a_data_file_that_changed(points, tmp_path):
    path = write_csv(tmp_path / "p.csv", *points)
    run_dir = run_numpy(["--data", str(path), "--max_epochs", "2"], tmp_path / "logs")
    shutil.copy(path, tmp_path / "kept.csv")
    path.write_text(path.read_text().replace(",0\n", ",1\n", 1))
    result = run_script("baseline_numpy.py", "--resume", str(run_dir), "--max_epochs", "3")
    assert result.returncode == 2
    assert "the file has changed since the run used it" in result.stderr and str(path) in result.stderr
    shutil.copy(tmp_path / "kept.csv", path)  # the same bytes again: the run continues
    assert run_script("baseline_numpy.py", "--resume", str(run_dir), "--max_epochs", "3").returncode == 0


def test_a_bad_file_is_refused_without_importing_torch(tmp_path):
    path = make_file(tmp_path, "ragged.csv", GOOD + "3.0,1\n")
    probe = (
        "import sys\nfrom mlp_lightning.cli import parse_fit_args\n"
        f"try:\n    parse_fit_args(['--data', {str(path)!r}, '--logdir', {str(tmp_path / 'logs')!r}])\n"
        "except SystemExit:\n    print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.stdout.strip() == "False", out.stderr


def test_evaluate_refuses_a_data_file_that_changed(points, tmp_path):
    path = write_csv(tmp_path / "p.csv", *points)
    run_dir = run_numpy(["--data", str(path), "--max_epochs", "1"], tmp_path / "logs")
    assert run_script("evaluate.py", str(run_dir)).returncode == 0
    path.write_text(path.read_text() + "0.0,0.0,1\n")
    result = run_script("evaluate.py", str(run_dir))
    assert result.returncode == 2 and "the file has changed since the run used it" in result.stderr


def test_a_run_stored_before_the_data_flags_reads_as_blobs(tmp_path):
    old = {k: v for k, v in HParams().as_dict().items() if k not in DATA_FLAGS_ADDED}
    assert stored_hparams(old, tmp_path / "old.ckpt") == HParams()
