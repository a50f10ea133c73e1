"""A zip archive someone else wrote (an .npz, a torch checkpoint): what it promises, checked first.

A zip's directory states each member's name and its size once inflated, and a ``.npy``
member's header its shape and dtype: a few hundred kilobytes of deflated zeros can promise
gigabytes. These checks read only the directory and the headers (a few hundred bytes a member),
so an archive that holds members its reader does not expect, or promises more bytes than its
reader allows, or more than a header's shape accounts for, is refused in one line before a
member is inflated. What each file may hold is its reader's to say: the twin's checkpoint and a
weights file from their shapes, a ``--data`` file from ``DATA_ARCHIVE_MAX_BYTES``.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Collection
from typing import IO

import numpy as np
from numpy.lib import format as npy_format

from mlp_lightning.core.quoted import quoted_text

NPY = ".npy"
# A --data .npz's arrays once inflated, at most: its reader then holds them and X as float32
# beside them, so this is about what a 24 GiB machine reads without swapping. (The row and
# feature bounds of validate() apply to the points read; this bounds the bytes before they are.)
DATA_ARCHIVE_MAX_BYTES = 4 << 30
# A --data file (nothing else bounds its rows) that promises more than INFLATION_CHECKED_FROM bytes
# at more than MAX_INFLATION times the bytes stored is a bomb, not numbers: random floats deflate
# to about 90 %, a column of sorted labels to a few per mille; only long runs of one value (zeros)
# inflate a thousandfold. The other files are bounded by the model they hold.
INFLATION_CHECKED_FROM = 64 << 20
MAX_INFLATION = 100


def archive_members(
    archive: zipfile.ZipFile, source: str, error: type[Exception]
) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by name, from its directory; a name given twice is refused."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        if info.filename in members:
            raise error(f"{source} is damaged: it names the member {quoted_text(info.filename)} twice")
        members[info.filename] = info
    return members


def check_inflation(members: Collection[zipfile.ZipInfo], source: str, error: type[Exception]) -> None:
    """Refuse members that promise more than ``INFLATION_CHECKED_FROM`` bytes at more than
    ``MAX_INFLATION`` to 1: where nothing else bounds a file's size (a ``--data`` file's rows)."""
    promised = sum(info.file_size for info in members)
    stored = sum(info.compress_size for info in members)
    if promised > INFLATION_CHECKED_FROM and promised > MAX_INFLATION * max(stored, 1):
        raise error(
            f"{source} promises {_size(promised)} inflated from {_size(stored)} "
            f"(more than {MAX_INFLATION} to 1): refused unread, as a zip bomb would be; if these are "
            "your numbers (mostly zeros), save them uncompressed (np.savez, not np.savez_compressed)"
        )


def check_promised_size(
    members: Collection[zipfile.ZipInfo], limit: int, source: str, error: type[Exception], why: str
) -> None:
    """Refuse members that inflate to more than ``limit`` bytes in all; ``why`` says what it is for."""
    promised = sum(info.file_size for info in members)
    if promised > limit:
        bound = f"{why}: at most {_size(limit)}" if why else f"at most {_size(limit)}"
        raise error(f"{source} promises {_size(promised)} once inflated ({bound}): refused unread")


def npz_headers(
    archive: zipfile.ZipFile,
    source: str,
    error: type[Exception],
    names: Collection[str],
    what: str,
    max_bytes: int | None = None,
    others: bool = False,
    inflation: bool = False,
) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{array name: (shape, dtype)} of an .npz's arrays in ``names``, from its directory and headers alone.

    Each must inflate to at most ``max_bytes`` in all, and hold exactly the bytes its header's shape
    and dtype account for; an object dtype (a pickle) is refused. Any other member is refused
    (``what`` names the file's kind), unless ``others``: then it is left unread. ``inflation``:
    ``check_inflation`` too, where the caller knows no model to bound the bytes by.
    """
    members = archive_members(archive, source, error)
    unexpected = [f for f in members if not f.endswith(NPY) or f.removesuffix(NPY) not in names]
    if unexpected and not others:
        shown = ", ".join(quoted_text(f, 40) for f in unexpected[:3]) + (", ..." * (len(unexpected) > 3))
        raise error(
            f"{source} holds {len(unexpected)} member(s) {what} does not ({shown}; it may hold "
            f"{', '.join(sorted(names))}): refused unread"
        )
    read = {f.removesuffix(NPY): info for f, info in members.items() if f not in unexpected}
    if max_bytes is not None:
        check_promised_size(read.values(), max_bytes, source, error, what)
    if inflation:
        check_inflation(read.values(), source, error)
    return {name: npy_header(archive, info, source, error) for name, info in read.items()}


def npy_header(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str, error: type[Exception]
) -> tuple[tuple[int, ...], np.dtype]:
    """A .npy member's (shape, dtype), read from its header; its size must be what they account for."""
    name = quoted_text(info.filename.removesuffix(NPY), 40)
    try:
        with archive.open(info) as member:
            shape, dtype, header = _read_header(member)
    except Exception as err:  # ValueError of a bad header, BadZipFile, zlib.error, EOFError, ...
        raise error(f"{source}: array {name} has no readable .npy header ({_one_line(err)})") from None
    if dtype.hasobject:
        raise error(f"{source}: array {name} holds pickled objects (refused unread, nothing in it was run)")
    declared = math.prod(shape) * dtype.itemsize  # Python integers: 2**40 rows do not overflow
    if declared != info.file_size - header:
        raise error(
            f"{source}: array {name} declares shape {shape} of {dtype.str} ({_size(declared)}) "
            f"but holds {_size(max(info.file_size - header, 0))}: refused unread"
        )
    return shape, dtype


def _read_header(member: IO[bytes]) -> tuple[tuple[int, ...], np.dtype, int]:
    version = npy_format.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = npy_format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, _, dtype = npy_format.read_array_header_2_0(member)
    else:
        raise ValueError(f".npy format version {version} (this project writes 1.0)")
    return tuple(shape), dtype, member.tell()


def _size(n: int) -> str:
    """Bytes in the largest unit that keeps a digit before the point: 934 MB, 1.5 TB."""
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1000
    raise AssertionError


def _one_line(err: Exception) -> str:
    return quoted_text(" ".join(str(err).split()), 120) if str(err) else type(err).__name__
