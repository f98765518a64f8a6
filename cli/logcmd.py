"""Commands of the custody log: checkpoints, the log key, proofs, the offline audit export."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import click

from cli.context import Context, pass_ctx


def ledger_of(ctx: Context):  # type: ignore[no-untyped-def]
    from store.ledger import Ledger

    return Ledger(ctx.instance())


@click.command()
@click.option("--size", type=click.IntRange(min=0),
              help="The checkpoint signed at this tree size (default: the latest).")
@pass_ctx
def checkpoint(ctx: Context, size: int | None) -> None:
    """Print the latest signed checkpoint (a C2SP signed note), or the one at --size."""
    ledger = ledger_of(ctx)
    click.echo(ledger.checkpoint(size) if size is not None else ledger.latest_checkpoint(), nl=False)


@click.command("log-key")
@pass_ctx
def log_key(ctx: Context) -> None:
    """Print the log's verifier key: <origin>+<key hash>+<base64 key>."""
    click.echo(ledger_of(ctx).log_key())


@click.group()
def proof() -> None:
    """Inclusion and consistency proofs."""


@proof.command("inclusion")
@click.argument("index", type=click.IntRange(min=0))
@click.option("--size", type=click.IntRange(min=0), help="Against the checkpoint at this size (default: the latest).")
@pass_ctx
def proof_inclusion(ctx: Context, index: int, size: int | None) -> None:
    """Print a c2sp.org/tlog-proof@v1 for the leaf at INDEX."""
    click.echo(ledger_of(ctx).inclusion_proof(index, size), nl=False)


@proof.command("consistency")
@click.argument("old", type=click.IntRange(min=0))
@click.argument("new", type=click.IntRange(min=0), required=False)
@pass_ctx
def proof_consistency(ctx: Context, old: int, new: int | None) -> None:
    """Print the RFC 6962 consistency proof between tree sizes OLD and NEW (default: the current size)."""
    ledger = ledger_of(ctx)
    size = ledger.size()
    new = size if new is None else new
    if not old <= new <= size:
        raise click.BadParameter(f"need OLD <= NEW <= {size} (the tree size)")
    click.echo(ledger.consistency_proof(old, new), nl=False)


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@pass_ctx
def export(ctx: Context, folder: Path) -> None:
    """Write an offline audit bundle to FOLDER.

    checkpoint, log.vkey, leaves.jsonl ({"index", "leaf"} a line, the leaf as
    base64 of its exact bytes), keys.json, and checkpoints/ (every checkpoint
    ever signed, one file each, named by tree size). FOLDER must be new or empty.
    """
    from sqlalchemy import select

    from store.models import LogLeaf

    # An auditor reads every file of the bundle as this log's: a stale checkpoints/<size> from an earlier
    # export (or another log) would sit among this log's checkpoints unnoticed.
    if folder.is_dir() and any(folder.iterdir()):
        raise click.BadParameter(f"{folder} is not empty; export into a new or empty folder", param_hint="FOLDER")
    ledger = ledger_of(ctx)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "checkpoints").mkdir(exist_ok=True)
    checkpoints = ledger.checkpoints()
    for size, note in checkpoints:
        (folder / "checkpoints" / str(size)).write_text(note, encoding="utf-8")
    size = checkpoints[-1][0] if checkpoints else 0
    (folder / "checkpoint").write_text(checkpoints[-1][1] if checkpoints else "", encoding="utf-8")
    (folder / "log.vkey").write_text(ledger.log_key() + "\n", encoding="utf-8")
    keys = [k.as_json() for k in ctx.instance().keys.keyring()]
    (folder / "keys.json").write_text(json.dumps(keys, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    count = 0
    tmp = folder / "leaves.jsonl.tmp"
    with ledger.db.session() as s, open(tmp, "w", encoding="utf-8") as out:
        rows = s.execute(select(LogLeaf.idx, LogLeaf.data).where(LogLeaf.idx < size).order_by(LogLeaf.idx)
                         .execution_options(yield_per=5000))
        for idx, data in rows:
            out.write(json.dumps({"index": idx, "leaf": base64.b64encode(data).decode("ascii")}) + "\n")
            count += 1
    os.replace(tmp, folder / "leaves.jsonl")
    click.echo(f"exported {count} leaves, {len(checkpoints)} checkpoints and {len(keys)} keys to {folder}")


def register(group: click.Group) -> None:
    for command in (checkpoint, log_key, proof, export):
        group.add_command(command)
