"""docs/station.md stays true to the code: its options exist, every colour reason and every crash step is in it."""

from __future__ import annotations

import re
from pathlib import Path

import click

from cli.main import stations
from cli.scan import scan
from cli.station import station
from scanners.station.faults import STEPS
from scanners.station.messages import REASONS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "station.md").read_text(encoding="utf-8")


def options(command: click.Command) -> set[str]:
    found = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            found |= options(sub)
    return found


def test_every_option_in_the_doc_exists() -> None:
    known = options(scan) | options(station) | options(stations) | {"--help"}
    written = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", DOC))
    assert written - known == set()
    assert {"--action", "--counterpart", "--headless", "--resume", "--manifest", "--log-key"} <= written


def test_every_station_command_is_in_the_doc() -> None:
    assert {name for name in station.commands if f"custody station {name}" not in DOC} == set()


def test_every_colour_reason_and_crash_step_is_in_the_doc() -> None:
    table = DOC.split("### Colours and what they mean", 1)[1].split("### Headless mode", 1)[0]
    assert {code for code in REASONS if f"`{code}`" not in table} == set()
    for code, (colour, _, _) in REASONS.items():
        row = next(line for line in table.splitlines() if f"`{code}`" in line)
        assert row.startswith(f"| {colour} |"), row
    crash = DOC.split("## What survives a crash at each step", 1)[1]
    assert {step for step in STEPS if f"`{step}`" not in crash} == set()
