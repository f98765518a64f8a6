"""Files replaced whole: the old version or the new one, never half, with the mode asked for."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from keys.durable import write_atomically


def test_a_file_is_replaced_whole_with_its_mode_and_nothing_left_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "checkpoint"
    write_atomically(path, b"first\n")
    write_atomically(path, b"second\n" * 10_000)
    assert path.read_bytes() == b"second\n" * 10_000
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    write_atomically(tmp_path / "secret", b"key", mode=0o600)
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["checkpoint", "secret", "sub"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "latest.json"
    write_atomically(path, b"old")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_atomically(path, b"new")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["latest.json"]
