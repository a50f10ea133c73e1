"""Shared fixtures. Helpers that tests import (REPO, read_scalars, run_script) are in tests/helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import setup_problem


def pytest_configure(config: pytest.Config) -> None:
    """One line instead of dozens of collection errors when the project is not installed here."""
    if message := setup_problem():
        raise pytest.UsageError(message)


@pytest.fixture
def tree_snapshot():
    """Snapshot of every file (path -> bytes) under a directory, to prove nothing changed."""

    def snapshot(root: Path) -> dict[str, bytes]:
        if not root.exists():
            return {}
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    return snapshot
