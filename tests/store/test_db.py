"""SQLite connection settings: what every connection gets, and what only the writer's do."""

from __future__ import annotations

from pathlib import Path

from store.db import WAL_CHECKPOINT_PAGES, WRITER_CACHE_KIB, Database


def _pragma(connection: object, name: str) -> object:
    return connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # type: ignore[attr-defined]


def test_the_writer_keeps_more_pages_and_checkpoints_less_often(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'custody.db'}")
    try:
        with db.writer.connect() as writer, db.engine.connect() as reader:
            assert _pragma(writer, "journal_mode") == "wal" and _pragma(writer, "synchronous") == 2  # FULL
            assert _pragma(writer, "cache_size") == -WRITER_CACHE_KIB
            assert _pragma(reader, "cache_size") == -2000  # SQLite's default: readers are many
            for connection in (writer, reader):
                assert _pragma(connection, "wal_autocheckpoint") == WAL_CHECKPOINT_PAGES
    finally:
        db.engine.dispose()
        db.writer.dispose()
