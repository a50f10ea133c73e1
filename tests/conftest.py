"""Shared fixtures. Helpers that tests import (REPO, read_scalars, run_script) are in tests/helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def tree_snapshot():
    """Snapshot of every file (path -> bytes) under a directory, to prove nothing changed."""

    def snapshot(root: Path) -> dict[str, bytes]:
        if not root.exists():
            return {}
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    return snapshot
