"""A value read from someone else's file is shown bounded and escaped, at a bounded cost."""

from __future__ import annotations

import time

import numpy as np
import yaml

from mlp_lightning.core.quoted import quoted, quoted_text


def _nested_shared_lists(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value, value]  # 2^depth leaves, a few hundred bytes as a pickle or YAML
    return value


def test_plain_values_read_as_repr():
    for value in ("abc", 3, -2.5, None, True, [1, "a"], (1,), {"lr": 0.1}, b"\x00z"):
        assert quoted(value) == repr(value)


def test_a_value_that_expands_to_gigabytes_is_shown_in_the_limit_at_once():
    started = time.perf_counter()
    shown = quoted(_nested_shared_lists(80), limit=60)
    assert len(shown) <= 60 and shown.startswith("[[[[") and shown.endswith("...")
    assert time.perf_counter() - started < 0.5  # a walk of 2^80 leaves would never end


def test_yaml_anchors_that_expand_to_gigabytes_are_shown_in_the_limit():
    doc = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    )  # 9^9 = 387 million strings
    shown = quoted(yaml.safe_load(doc), limit=80)
    assert len(shown) == 80 and shown.startswith("{'a': ['x', 'x'")


def test_terminal_escapes_and_bidirectional_overrides_are_escaped():
    hostile = "name\x1b]0;pwned\x07\x1b[2J\u202eevil"
    for shown in (quoted(hostile), quoted([hostile]), quoted_text(hostile)):
        assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
        assert "\\x1b]0;pwned\\x07" in shown and "\\u202e" in shown


def test_long_text_is_cut_before_it_is_escaped_whole():
    shown = quoted("\x00" * 10_000_000, limit=40)  # repr of the whole would be 40 MB
    assert len(shown) == 40 and shown.endswith("...")
    assert quoted_text("x" * 500, limit=20) == "x" * 17 + "..."


def test_a_huge_integer_is_described_not_converted():
    assert quoted(10**100_000) == "<int of 332193 bits>"  # str() refuses over 4300 digits


def test_arrays_and_other_objects_are_described_by_type_and_shape():
    assert quoted(np.zeros((3, 4), np.float32)) == "<ndarray of shape 3x4>"
    assert quoted(object()) == "<object>"
