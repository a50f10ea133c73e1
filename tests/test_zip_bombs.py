"""Archives from someone else (checkpoints, weights, --data files) that promise more than they hold.

Each probe is a few hundred kilobytes of deflated zeros, or a .npy header that declares more rows
than its member holds. The scripts run under a 1 GiB address-space cap (a regression fails with
MemoryError, not by taking the machine) and a timeout; each must refuse in one line, exit 2, and
leave the file as it was. What a file may hold comes from its directory and headers alone
(``core/archive_check.py``, ``lightning/checkpoint_archive.py``), checked before a member is inflated.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mlp_lightning.core.archive_check import DATA_ARCHIVE_MAX_BYTES, MAX_INFLATION
from mlp_lightning.core.errors import CheckpointError, ConfigError, WeightsError
from mlp_lightning.core.weights import init_weights
from mlp_lightning.numpy_twin.checkpoint import load_state
from tests.helpers import GIB, run_lightning, run_numpy, run_script

TINY = ["--n_per_class", "20", "--batch_size", "8", "--hidden_dim", "8", "--seed", "5"]
BOMB = 32 << 20  # zeros: past the bounds of the tiny model here, and about 32 KB deflated
CHUNK = 8 << 20


def zeros_member(archive: zipfile.ZipFile, name: str, shape: tuple[int, ...], dtype, size: int | None = None):
    """A .npy member whose header declares ``shape`` of ``dtype`` and whose data is ``size`` zero bytes
    (the size the shape accounts for, if None), written in chunks: the test never holds it whole."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize if size is None else size
    with archive.open(name, "w", force_zip64=True) as member:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(member, header)
        for start in range(0, size, CHUNK):
            member.write(bytes(min(CHUNK, size - start)))


def deflated_copy(data: bytes, extra: dict[str, int] | None = None) -> bytes:
    """The zip ``data`` with every member deflated, plus ``extra`` members of that many zero bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), compresslevel=1)
        for name, size in (extra or {}).items():
            zeros_member(dst, name, (size,), np.uint8) if name.endswith(".npy") else dst.writestr(
                name, bytes(size), compresslevel=1
            )
    return out.getvalue()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_refused_in_one_line(result, prog: str, *words: str) -> None:
    err = result.stderr.strip()
    assert result.returncode == 2, err[-2000:]
    assert len(err.splitlines()) == 1 and err.startswith(f"{prog}: error: "), err[-2000:]
    assert all(word in err for word in words), err


@pytest.fixture(scope="module")
def twin_run(tmp_path_factory) -> Path:
    return run_numpy([*TINY, "--max_epochs", "2"], tmp_path_factory.mktemp("twin") / "logs")


# --- the twin's checkpoint -------------------------------------------------------------------------


def test_a_twin_checkpoint_with_an_extra_member_of_zeros_is_refused_unread_by_a_resume(twin_run, tmp_path):
    """The probe: a 527 KB last.npz with an extra member cost 576 MB before it was refused."""
    run_dir = tmp_path / "logs" / "numpy" / "version_0"
    shutil.copytree(twin_run, run_dir)
    path = run_dir / "checkpoints" / "last.npz"
    path.write_bytes(deflated_copy(path.read_bytes(), {"extra.npy": BOMB}))
    before = sha256(path)

    result = run_script(
        "baseline_numpy.py", "--resume", str(run_dir), "--max_epochs", "3", timeout=60, memory=GIB
    )

    assert_refused_in_one_line(result, "baseline_numpy.py", "another architecture or trainer", "extra")
    assert sha256(path) == before


def test_a_twin_checkpoint_with_an_extra_member_is_refused_before_any_array_is_read(
    twin_run, tmp_path, monkeypatch
):
    """Refused from the directory: the original reader inflated every member (576 MB for 512 MB) first."""
    from mlp_lightning.numpy_twin import checkpoint

    path = tmp_path / "last.npz"
    path.write_bytes(deflated_copy((twin_run / "checkpoints" / "last.npz").read_bytes(), {"extra.npy": 1024}))

    def inflated(*args, **kwargs):
        raise AssertionError("an array was read")

    monkeypatch.setattr(checkpoint.np, "load", inflated)
    monkeypatch.setattr(checkpoint.zipfile.ZipFile, "testzip", inflated)
    with pytest.raises(CheckpointError, match=r"another architecture or trainer: arrays \[.*extra"):
        load_state(path)


def test_a_twin_checkpoint_whose_weights_promise_more_than_its_model_is_refused_unread(twin_run, tmp_path):
    source = twin_run / "checkpoints" / "last.npz"
    path = tmp_path / "last.npz"
    out = io.BytesIO()
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename == "W1.npy":  # (2, 8) in the model; declared and held: 3 million rows
                zeros_member(dst, "W1.npy", (1 << 20, 8), np.float32)
            else:
                dst.writestr(info.filename, src.read(info))
    path.write_bytes(out.getvalue())

    with pytest.raises(
        CheckpointError, match=r"promises 33.6 MB once inflated \(a model of dim=2, hidden_dim=8"
    ):
        load_state(path)


def test_a_twin_checkpoint_array_whose_header_declares_more_than_it_holds_is_refused(twin_run, tmp_path):
    source = twin_run / "checkpoints" / "last.npz"
    path = tmp_path / "last.npz"
    out = io.BytesIO()
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename == "b1.npy":
                zeros_member(dst, "b1.npy", (1 << 40,), np.float32, size=32)
            else:
                dst.writestr(info.filename, src.read(info))
    path.write_bytes(out.getvalue())

    with pytest.raises(
        CheckpointError, match=r"array b1 declares shape \(1099511627776,\) of <f4 \(4.4 TB\)"
    ):
        load_state(path)


# --- a --data file -------------------------------------------------------------------------------


def data_npz(path: Path, rows: int, declared_rows: int | None = None, deflate: bool = True) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as archive:
        held = None if declared_rows is None else rows * 2 * 8
        zeros_member(archive, "X.npy", (declared_rows or rows, 2), np.float64, size=held)
        zeros_member(
            archive, "y.npy", (declared_rows or rows,), np.int64, size=None if held is None else rows * 8
        )
    return path


@pytest.mark.parametrize(
    ("rows", "declared_rows", "words"),
    [
        # the probe: a 1 MB .npz expanded to 1.6 GB; here 6 million zero rows, 144 MB at 1000 to 1
        (6_000_000, None, (f"more than {MAX_INFLATION} to 1", "save them uncompressed (np.savez")),
        # the probe: X.npy's header declared 2**40 rows: an _ArrayMemoryError traceback
        (100, 1 << 40, ("array X declares shape (1099511627776, 2) of <f8 (17.6 TB) but holds 1.6 KB",)),
    ],
    ids=["zeros", "declared_rows"],
)
def test_a_data_npz_promising_more_than_it_holds_is_refused_unread(tmp_path, rows, declared_rows, words):
    path = data_npz(tmp_path / "points.npz", rows, declared_rows)
    before = sha256(path)

    result = run_script(
        "baseline_numpy.py", "--data", str(path), "--logdir", str(tmp_path / "logs"), timeout=60, memory=GIB
    )

    assert_refused_in_one_line(result, "baseline_numpy.py", str(path), *words)
    assert sha256(path) == before
    assert not (tmp_path / "logs").exists()


def test_a_data_npz_past_the_byte_cap_is_refused_from_its_directory(tmp_path, monkeypatch):
    from mlp_lightning.core import archive_check, data_file

    path = data_npz(tmp_path / "points.npz", 1000, deflate=False)  # 24 KB, stored as it is
    monkeypatch.setattr(data_file, "DATA_ARCHIVE_MAX_BYTES", 16_000)  # the cap, scaled to the file
    with pytest.raises(ConfigError, match=r"promises 24.3 KB once inflated \(a --data file's X, y and "):
        data_file.read_data_file(path)
    assert archive_check.DATA_ARCHIVE_MAX_BYTES == DATA_ARCHIVE_MAX_BYTES == 4 << 30


def test_the_same_points_stored_uncompressed_are_read(tmp_path, monkeypatch):
    """What the bomb's message tells the owner of honest, mostly-zero numbers to do."""
    from mlp_lightning.core import archive_check
    from mlp_lightning.core.data_file import read_data_file

    monkeypatch.setattr(archive_check, "INFLATION_CHECKED_FROM", 1 << 20)  # the threshold, scaled to the file
    X = np.zeros((60_000, 4), np.float32)  # 0.96 MB, with y 1.4 MB: past the scaled threshold
    X[::1000, 0] = 1.0
    y = (np.arange(60_000) % 2).astype(np.int64)
    np.savez_compressed(tmp_path / "compressed.npz", X=X, y=y)
    with pytest.raises(ConfigError, match="save them uncompressed"):
        read_data_file(tmp_path / "compressed.npz")
    np.savez(tmp_path / "sparse.npz", X=X, y=y)
    assert read_data_file(tmp_path / "sparse.npz").X.shape == (60_000, 4)


def test_a_data_npz_with_other_arrays_is_read_and_they_are_left_unread(tmp_path):
    from mlp_lightning.core.data_file import read_data_file

    path = tmp_path / "points.npz"
    np.savez(path, X=np.arange(8.0).reshape(4, 2), y=np.array([0, 1, 0, 1]), notes=np.array(["kept aside"]))
    assert read_data_file(path).X.shape == (4, 2)


# --- a weights file --------------------------------------------------------------------------------


def test_a_weights_npz_whose_arrays_promise_more_than_its_model_is_refused_unread(tmp_path):
    from mlp_lightning.analysis.export import load_npz

    path = tmp_path / "weights.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in init_weights(2, 8, 2, seed=0).items():
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, array)
        zeros_member(archive, "feature_names.npy", (2,), "<U4000000")  # two names of 4 million characters
    before = sha256(path)

    with pytest.raises(
        WeightsError, match=r"promises 32 MB once inflated \(weights of W1 \(2, 8\), W2 \(8, 2\)"
    ):
        load_npz(path)
    assert sha256(path) == before


# --- a Lightning checkpoint ------------------------------------------------------------------------


def weights_checkpoint(extra: torch.Tensor | None = None) -> bytes:
    """A checkpoint of weights alone, as export_weights.py writes one, plus ``extra`` beside them."""
    state = {f"model.{k}": torch.from_numpy(v) for k, v in init_weights(2, 8, 2, seed=0).items()}
    buffer = io.BytesIO()
    torch.save({"state_dict": state, **({"extra": extra} if extra is not None else {})}, buffer)
    return buffer.getvalue()


def test_a_checkpoint_carrying_a_tensor_of_zeros_is_refused_before_its_storages_are_read(tmp_path):
    from mlp_lightning.lightning.checkpoint_io import read_checkpoint

    path = tmp_path / "received.ckpt"
    path.write_bytes(deflated_copy(weights_checkpoint(torch.zeros(BOMB // 4))))
    with pytest.raises(CheckpointError, match=r"promises 33.6 MB of tensors, more than its 42 parameters"):
        read_checkpoint(path)


@pytest.mark.slow  # imports Lightning in a process of its own: seconds
def test_a_checkpoint_carrying_a_tensor_of_zeros_is_refused_unread_by_export(tmp_path):
    """The probe: a 530 KB .ckpt carrying an extra 512 MB tensor was loaded whole (934 MB resident)."""
    path = tmp_path / "received.ckpt"
    path.write_bytes(deflated_copy(weights_checkpoint(torch.zeros(BOMB // 4))))
    before = sha256(path)

    result = run_script("export_weights.py", str(path), str(tmp_path / "out.npz"), timeout=60, memory=GIB)

    assert_refused_in_one_line(
        result, "export_weights.py", "promises 33.6 MB of tensors", "its 42 parameters"
    )
    assert sha256(path) == before
    assert not (tmp_path / "out.npz").exists()


def test_a_checkpoint_member_torch_save_does_not_write_is_refused_unread(tmp_path):
    from mlp_lightning.lightning.checkpoint_io import read_checkpoint

    path = tmp_path / "received.ckpt"
    path.write_bytes(deflated_copy(weights_checkpoint(), {"archive/notes.txt": BOMB}))
    with pytest.raises(
        CheckpointError, match=r"holds a member torch.save does not write \(archive/notes.txt\)"
    ):
        read_checkpoint(path)


def test_a_checkpoint_whose_pickle_declares_storages_beyond_its_model_is_refused_unread(tmp_path):
    """A storage its pickle declares larger than its member holds: refused before torch allocates it."""
    from mlp_lightning.lightning.checkpoint_io import read_checkpoint

    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(weights_checkpoint(torch.zeros(17)))) as src,
        zipfile.ZipFile(out, "w") as dst,
    ):
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):  # 17 elements (pickle's BININT1 17), declared 2**28
                assert data.count(b"K\x11") == 2  # the storage's size and the tensor's shape
                data = data.replace(b"K\x11", b"J\x00\x00\x00\x10")
            dst.writestr(info, data)
    path = tmp_path / "received.ckpt"
    path.write_bytes(out.getvalue())

    with pytest.raises(
        CheckpointError, match=r"declares 1.07e\+03 MB of tensors, more than its 42 parameters"
    ):
        read_checkpoint(path)


@pytest.mark.slow
def test_a_resume_from_a_lightning_checkpoint_carrying_a_tensor_of_zeros_is_refused_unread(tmp_path):
    """The probe on fit.py --resume: the run's own checkpoint, with a tensor beside its weights."""
    run_dir = run_lightning([*TINY, "--max_epochs", "1"], tmp_path / "logs")
    path = run_dir / "checkpoints" / "last.ckpt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["extra"] = torch.zeros(BOMB // 4)
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    path.write_bytes(deflated_copy(buffer.getvalue()))
    before = sha256(path)

    result = run_script("fit.py", "--resume", str(run_dir), "--max_epochs", "2", timeout=120, memory=GIB)

    assert_refused_in_one_line(
        result, "fit.py", "promises 33.6 MB of tensors", "a model of dim=2, hidden_dim=8"
    )
    assert sha256(path) == before
