"""Shared fixtures. Helpers that tests import (REPO, read_scalars, run_script) are in tests/helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import repository_changes, setup_problem


def pytest_configure(config: pytest.Config) -> None:
    """One line instead of dozens of collection errors when the project is not installed here."""
    if message := setup_problem():
        raise pytest.UsageError(message)
    config.stash[_BEFORE] = repository_changes()


_BEFORE = pytest.StashKey[set]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when the tests wrote into the repository: a fresh clone's git status stays clean
    after the README's commands (runs go under tmp_path; logs/ is ignored)."""
    before, after = session.config.stash.get(_BEFORE, None), repository_changes()
    if before is None or after is None or not (written := sorted(after - before)):
        return
    print(f"\nthe tests wrote into the repository (git status): {', '.join(written)}")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def tree_snapshot():
    """Snapshot of every file (path -> bytes) under a directory, to prove nothing changed."""

    def snapshot(root: Path) -> dict[str, bytes]:
        if not root.exists():
            return {}
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    return snapshot
