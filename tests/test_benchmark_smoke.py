"""The benchmark's smoke version: every section still runs and fills its table (no timing thresholds)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import REPO

SECTIONS = (
    "## Machine",
    "## Targets",
    "## 1. Seed config, whole process",
    "## 2. Lightning's overhead, in process",
    "## 3. Large config, training epoch",
    "## 4. Memory",
    "## 5. Scaling",
)
LARGE_ROWS = (
    "numpy 2048",
    "torch 2048",
    "NumPy twin",
    "notebook's NumPy",
    "scikit-learn",
    "hand-written",
    "Lightning",
    "`scripts/fit.py`'s `train()` (",
    "`scripts/fit.py`'s `train()`, `--dropout 0`",
)
WHOLE_ROWS = ("import lightning.pytorch", "baseline_numpy.py", "reference_torch_loop.py", "fit.py")


def _rows(markdown: str, heading: str) -> list[list[str]]:
    """The body rows of the first table under ``heading``, as lists of cell strings."""
    section = markdown.split(heading, 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]


def _number(cell: str) -> float:
    return float(re.match(r"[\d,]*\.?\d*(?:e[+-]?\d+)?", cell).group(0).replace(",", ""))


@pytest.mark.slow
def test_quick_benchmark_writes_every_section_with_positive_numbers(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    proc = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--quick", "--sections", "cpu", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = out.read_text()
    for heading in SECTIONS:
        assert heading in md
    assert "<!-- gpu:start -->" in md and "<!-- gpu:end -->" in md

    whole = _rows(md, "## 1. Seed config, whole process")
    assert [any(name in row[0] for row in whole) for name in WHOLE_ROWS] == [True] * len(WHOLE_ROWS)
    assert all(_number(row[1]) > 0 for row in whole)

    large = _rows(md, "## 3. Large config, training epoch")
    assert [any(name in row[0] for row in large) for name in LARGE_ROWS] == [True] * len(LARGE_ROWS)
    measured = [row for row in large if "not installed" not in row[1]]  # scikit-learn is an optional extra
    assert all(_number(row[2]) > 0 for row in measured)  # useful GFLOP/s
    assert all(_number(row[1]) > 0 for row in measured[2:])  # samples/s (the two GEMM rows have none)

    overhead = _rows(md, "## 2. Lightning's overhead, in process")
    assert len(overhead) == 2
    for row in overhead:
        assert _number(row[1]) > 0 and _number(row[2]) > 0
        assert _number(row[4]) < 1e-5  # both drivers of the module compute the same losses

    memory = _rows(md, "## 4. Memory")
    assert len(memory) == 2 and all(_number(row[1]) > 0 and _number(row[2]) >= 0 for row in memory)

    scaling = _rows(md, "## 5. Scaling")
    assert {row[0] for row in scaling} == {"n_per_class", "hidden_dim"}
    assert all(_number(row[4]) > 0 for row in scaling)

    targets = _rows(md, "## Targets")
    assert len(targets) == 9 and all(row[2] in ("met", "**missed**") for row in targets)


def test_quick_run_writes_under_logs_and_never_the_committed_benchmarks_md(monkeypatch):
    from benchmarks import run

    monkeypatch.chdir(REPO)  # where a relative --out lands
    committed = REPO / "BENCHMARKS.md"
    assert run.parse([]).out.resolve() == committed  # the full run's numbers are the ones in git
    quick = run.parse(["--quick"]).out.resolve()
    assert quick != committed and quick.parent == REPO / "logs"  # ignored by git
    for out in ("BENCHMARKS.md", str(committed), "benchmarks/../BENCHMARKS.md"):
        with pytest.raises(SystemExit) as refused:
            run.parse(["--quick", "--out", out])
        assert refused.value.code == 2


def test_gpu_rows_of_an_earlier_run_survive_a_cpu_only_rewrite(tmp_path):
    from benchmarks import report

    out = tmp_path / "BENCHMARKS.md"
    report.write(out, "# Benchmarks\n\nold cpu", "## GPU: Some Card\n\nrow")
    report.write(out, "# Benchmarks\n\nnew cpu", None)
    text = out.read_text()
    assert "new cpu" in text and "old cpu" not in text and "## GPU: Some Card\n\nrow" in text
    report.write(out, None, "## GPU: Other Card")
    text = out.read_text()
    assert "new cpu" in text and "Other Card" in text and "Some Card" not in text
