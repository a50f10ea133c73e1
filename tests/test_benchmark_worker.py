"""The benchmark's worker processes: progress shows while a task runs, a failure says why."""

from __future__ import annotations

import re

import pytest

from benchmarks.sections import worker

TINY = dict(n_per_class=32, dim=4, hidden_dim=8, batch_size=16, max_epochs=1)


@pytest.mark.slow  # a benchmark worker process that imports Lightning
def test_a_workers_progress_lines_are_echoed_before_its_result(capsys):
    result = worker({"task": "overhead", "hp": TINY, "repeats": 1})

    out = capsys.readouterr().out
    line = r"\[\d\d:\d\d:\d\d\] pair (\d)/2: hand-written loop [\d.]+ s, Trainer\.fit [\d.]+ s"
    pairs = re.findall(line, out)
    assert pairs == ["1", "2"]  # the warm-up pair and the timed one
    assert "PROGRESS" not in out and "RESULT" not in out  # the protocol's prefixes stay between the processes
    assert len(result["hand_s"]) == len(result["trainer_s"]) == 1


def test_a_failing_worker_raises_with_the_end_of_its_stderr():
    with pytest.raises(RuntimeError, match="unknown task 'nonsense'"):
        worker({"task": "nonsense"})
