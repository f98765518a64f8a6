"""Shared plumbing of the commands: the instance, the clock, output helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from store.instance import Instance, open_instance, resolve_home


class Context:
    def __init__(self, home: str | None):
        self.home: Path = resolve_home(home)
        self._instance: Instance | None = None

    def instance(self) -> Instance:
        if self._instance is None:
            self._instance = open_instance(self.home, secret=demo_secret(self.home))
        return self._instance

    def close(self) -> None:
        if self._instance is not None:
            self._instance.close()


def demo_secret(home: Path) -> bytes | None:
    """A demo instance keeps its (throw-away) passphrase beside it; a real one never does."""
    from store.instance import DEMO_MARKER

    marker = home / DEMO_MARKER
    if marker.exists():
        return marker.read_text(encoding="utf-8").strip().encode("utf-8")
    return None


def now() -> datetime:
    return datetime.now(UTC)


def emit_json_lines(rows: Iterable[dict[str, Any]]) -> None:
    out = sys.stdout
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


def table(headers: list[str], rows: Iterable[Iterable[Any]]) -> None:
    cells = [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max([len(h)] + [_width(r[i]) for r in cells]) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for r in cells:
        click.echo("  ".join(c + " " * (w - _width(c)) for c, w in zip(r, widths, strict=True)))


def _width(text: str) -> int:
    # CJK characters take two columns in a terminal.
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


pass_ctx = click.make_pass_decorator(Context)
