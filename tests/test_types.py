"""The packages stay free of type errors under the project's mypy settings (pyproject.toml, ``[tool.mypy]``:
strict, over the packages it lists). A type error is often a crash waiting on a path no test takes: mypy
found ``custody labels png`` importing a function from the wrong module, which had failed since it was
written."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_finds_nothing(tmp_path: Path) -> None:
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent))
    if mypy is None:
        pytest.skip("mypy is not installed in this environment (requirements-dev.txt)")
    run = subprocess.run([mypy, "--cache-dir", str(tmp_path / "cache"), "--no-error-summary",
                          "--hide-error-context"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
