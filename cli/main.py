"""The ``custody`` command group and the commands of the foundation.

Exit codes: 0 ok; 1 an integrity or verification failure (a refused label, a
broken log); 2 a usage error (bad arguments, no instance, a refused plan).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli.context import Context, emit_json, emit_json_lines, now, pass_ctx, table
from custody.errors import CustodyError

if TYPE_CHECKING:
    from store.instance import Instance


class CustodyGroup(click.Group):
    """The command group; custody errors become a message and an exit code here, once."""

    def invoke(self, ctx: click.Context) -> object:
        from sqlalchemy.exc import OperationalError

        try:
            return super().invoke(ctx)
        except CustodyError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except OperationalError as exc:
            click.echo(f"error: the database cannot be used: {exc.orig}", err=True)
            ctx.exit(2)
        except OSError as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            # a file or folder the user named (an export folder, a report, a PDF) cannot be written or read:
            # name it, without a traceback
            where = f" {exc.filename}" if exc.filename else ""
            click.echo(f"error: cannot use{where}: {exc.strerror or exc}", err=True)
            ctx.exit(2)


@click.group(cls=CustodyGroup,
             context_settings={"auto_envvar_prefix": "CUSTODY", "help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), envvar="CUSTODY_HOME",
              help="Instance folder (keys, settings, SQLite database). Env: CUSTODY_HOME. Default: ./custody-home")
@click.version_option(package_name="custody")
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """custody: chained custody for exam papers.

    Signed QR labels, a tamper-evident log of every handover, nightly
    verification and leak investigation. The database URL comes from
    CUSTODY_DATABASE_URL (default: SQLite inside the home folder); key
    passphrases from CUSTODY_PASSPHRASE or a prompt, never from an argument.
    """
    context = Context(home)
    ctx.obj = context
    ctx.call_on_close(context.close)


@cli.command()
@click.option("--origin", default="nanchang.exam/zk2017", show_default=True,
              help="The log's origin line (a name for this log, e.g. city/exam).")
@click.option("--institute", default="3601", show_default=True, help="Unit code of the institute that runs it.")
@pass_ctx
def init(ctx: Context, origin: str, institute: str) -> None:
    """Create (or upgrade) an instance: database schema and the institute's keys."""
    from cli.context import demo_secret
    from store.instance import init_instance

    instance, done = init_instance(ctx.home, origin=origin, institute=institute, now=now(),
                                   secret=demo_secret(ctx.home))
    instance.close()
    for line in done:
        click.echo(line)
    click.echo(f"instance ready at {ctx.home}")


# --- plan -----------------------------------------------------------------------

@cli.group()
def plan() -> None:
    """Exam plans: subjects, sessions, the unit tree, candidates per room."""


@plan.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--exam", required=True, help="Exam code, e.g. zk2017.")
@click.option("--name", required=True, help="Exam name, e.g. 2017年南昌市中等学校招生考试.")
@click.option("--seal-prefix", default="FT", show_default=True, help="Prefix of the seal numbers.")
@pass_ctx
def plan_import(ctx: Context, path: Path, exam: str, name: str, seal_prefix: str) -> None:
    """Import a plan from a folder (subjects.csv, units.csv) or an .xlsx workbook.

    Every row is checked first; on any problem nothing is imported and every
    problem is listed with its row.
    """
    from store.plans import import_plan, read_plan_files

    exam_plan = read_plan_files(path, exam, name)
    instance = ctx.instance()
    with instance.db.write_session() as s:
        count = import_plan(s, exam_plan, now(), seal_prefix=seal_prefix)
    instance.set_setting("exam", exam)
    click.echo(f"imported exam {exam}: {len(exam_plan.subjects)} subjects, {len(exam_plan.units)} units, "
               f"{exam_plan.candidates} candidates, {count} items")


@plan.command("sample")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--scale", type=click.Choice(["tiny", "city"]), default="city", show_default=True)
def plan_sample(folder: Path, scale: str) -> None:
    """Write the sample Nanchang plan as CSV files (the format `plan import` reads)."""
    from custody.sample import sample_plan
    from store.plans import write_plan_files

    write_plan_files(sample_plan(scale), folder)
    click.echo(f"wrote {folder / 'subjects.csv'} and {folder / 'units.csv'}")


# --- items ------------------------------------------------------------------------

@cli.group()
def items() -> None:
    """Tracked items: bundles, discs, answer keys, backup papers, boxes."""


@items.command("list")
@click.option("--subject", help="Only this subject code (e.g. YW).")
@click.option("--kind", help="Only this kind (paper_bundle, answer_card_bundle, listening_disc, answer_key, "
                             "backup_paper, box).")
@click.option("--exam", help="Exam code (default: the current exam).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@pass_ctx
def items_list(ctx: Context, subject: str | None, kind: str | None, exam: str | None, as_json: bool) -> None:
    """List items with id, kind, subject, destination, count, seal and box."""
    from sqlalchemy import select

    from custody.labels import ItemKind
    from store.models import Item
    from store.queries import check_exam_and_subject

    instance = ctx.instance()
    exam = exam or instance.current_exam()
    if exam:
        # a misspelt exam or subject is named (exit 2), not listed as nothing; an instance with no exam
        # imported yet simply has no items
        check_exam_and_subject(instance, exam, subject)
    query = select(Item).where(Item.exam == exam).order_by(Item.id)
    if subject:
        query = query.where(Item.subject == subject)
    if kind:
        try:
            query = query.where(Item.kind == int(ItemKind.from_slug(kind)))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--kind") from None
    with instance.db.session() as s:
        rows = s.scalars(query).all()
    records = ({"id": r.item_id, "kind": ItemKind(r.kind).slug, "subject": r.subject, "destination": r.destination,
                "count": r.count, "seal": r.seal, "box": r.parent_box, "exam": r.exam,
                "labelled": r.label_text is not None} for r in rows)
    if as_json:
        emit_json_lines(records)
    else:
        table(["id", "kind", "subject", "destination", "count", "seal", "box"],
              ([r["id"], r["kind"], r["subject"], r["destination"], r["count"], r["seal"], r["box"]]
               for r in records))


# --- keys -------------------------------------------------------------------------

@cli.group()
def keys() -> None:
    """The public key registry; rotation and revocation of keys."""


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON array.")
@pass_ctx
def keys_list(ctx: Context, as_json: bool) -> None:
    """Every public key: kid, role, owner, raw public key (base64), validity, revocation."""
    ring = ctx.instance().keys.keyring()
    rows = [k.as_json() for k in ring]
    if as_json:
        emit_json(rows)
    else:
        table(["kid", "role", "owner", "valid_from", "valid_until", "revoked_at"],
              ([r["kid"], r["role"], r["owner"], r["valid_from"], r["valid_until"], r["revoked_at"]] for r in rows))


@keys.command("rotate")
@click.option("--role", required=True, type=click.Choice(["label_issuer", "badge_issuer", "log_signer"]))
@click.option("--owner", help="Owner unit (default: the institute).")
@pass_ctx
def keys_rotate(ctx: Context, role: str, owner: str | None) -> None:
    """Create a new key for a role; the old one stops signing but what it signed still verifies."""
    from custody.keyring import Role

    instance = ctx.instance()
    key = instance.keys.rotate(Role(role), owner or instance.institute, now())
    click.echo(f"new {role} key {key.kid_hex}, valid from {key.valid_from.isoformat()}")
    # the new key, and the old key's end (a retirement leaf), into the log now
    logged = _log_registry_now(instance, "the new key and the old key's end are in the key registry", "")
    click.echo(f"entered in the custody log ({_leaves(logged)})")


def _leaves(count: int) -> str:
    return f"{count} leaf" if count == 1 else f"{count} leaves"


def _log_registry_now(instance: Instance, what: str, retry: str) -> int:
    """Append the registry's new facts to the custody log now, not with the server's next batch (after an
    exam there may be none for weeks, and the nightly verification trusts the log's key facts, not the
    registry's); returns how many leaves that took. ``what`` says what the registry holds, ``retry`` how
    else to log it, for the error when the log cannot take it now."""
    from store.ledger import Ledger

    try:
        return Ledger(instance).log_registry()
    except CustodyError as exc:
        raise click.ClickException(
            f"{what} but NOT yet in the custody log: {exc}. It enters the log with the next batch the server "
            f"appends{retry}.") from None


@keys.command("revoke")
@click.argument("kid")
@click.option("--reason", required=True, help="Why (key lost, station stolen, ...).")
@click.option("--at", "at_text", help="Revocation time, ISO 8601 (default: now). Signatures from then on are void.")
@pass_ctx
def keys_revoke(ctx: Context, kid: str, reason: str, at_text: str | None) -> None:
    """Revoke a key: what it signed from the revocation time on no longer verifies."""
    from datetime import UTC, datetime

    try:
        at = datetime.fromisoformat(at_text) if at_text else now()
    except ValueError:
        raise click.BadParameter(f"{at_text!r} is not an ISO 8601 time, e.g. 2017-06-20T08:00:00+08:00",
                                 param_hint="--at") from None
    if at.tzinfo is None:
        raise click.BadParameter("give a time zone, e.g. 2017-06-20T08:00:00+08:00", param_hint="--at")
    instance = ctx.instance()
    revoked = instance.keys.revoke(kid, at, reason)
    for key in revoked:
        # a key revoked before stays revoked from the earlier of the two times, with that revocation's reason
        assert key.revoked_at is not None
        said = "revoked" if key.revoked_at == at else "already revoked"
        click.echo(f"{said} {key.kid_hex} ({key.role.value}, {key.owner}) from "
                   f"{key.revoked_at.astimezone(UTC).isoformat()}: "
                   f"{key.revocation_reason}")
    # Into the log now (the nightly verification names what the key signed from then on until the log holds
    # the revocation).
    what = "the revocation is in the key registry (stations signing with the key are refused from now on)"
    logged = _log_registry_now(instance, what, ", or run this command again with the passphrase")
    click.echo(f"entered in the custody log ({_leaves(logged)})" if logged
               else "the custody log already holds it")


# --- stations ---------------------------------------------------------------------

@cli.group()
def stations() -> None:
    """Scanning stations registered with this instance (also on the web Stations page)."""


@stations.command("add")
@click.argument("code")
@click.option("--unit", required=True, help="The unit the station works for, e.g. 360102 or K001.")
@click.option("--name", default="", help="A name for people, e.g. 东湖区保密室交接台.")
@click.option("--public-key", "public_key", required=True, metavar="KEY",
              help="The station's public key (hex or base64), as `custody station init` printed it.")
@pass_ctx
def stations_add(ctx: Context, code: str, unit: str, name: str, public_key: str) -> None:
    """Register a station and its key; its events verify from now on. Again with a new key: a new key."""
    import getpass

    from store.accounts import AuditEntry
    from store.stations import parse_public_key, register_station

    raw = parse_public_key(public_key)
    if raw is None:
        raise click.BadParameter("a 32-byte Ed25519 public key, in hex or base64", param_hint="--public-key")
    instance = ctx.instance()
    try:
        kid = register_station(instance, code, unit, name, raw, now())
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    with instance.db.write_session() as s:
        s.add(AuditEntry(at=now(), username=f"cli:{getpass.getuser()}"[:64], role="admin",
                         action="register_station", target=code, detail=f"unit={unit} kid={kid}", address=""))
    click.echo(f"station {code} at {unit} registered with key {kid}")


@stations.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON array.")
@pass_ctx
def stations_list(ctx: Context, as_json: bool) -> None:
    """Every station: code, unit, name, current key id, registered at."""
    from sqlalchemy import select

    from store.models import Station

    with ctx.instance().db.session() as s:
        rows = [{"code": r.code, "unit": r.unit, "name": r.name, "kid": r.kid,
                 "registered_at": r.registered_at.isoformat()}
                for r in s.scalars(select(Station).order_by(Station.code))]
    if as_json:
        emit_json(rows)
    else:
        table(["code", "unit", "name", "kid", "registered_at"], ([r[k] for k in r] for r in rows))


# --- labels -----------------------------------------------------------------------

@cli.group()
def labels() -> None:
    """Issue, print and verify signed QR labels."""


@labels.command("issue")
@click.option("--exam", help="Exam code (default: the current exam).")
@click.option("--reissue", is_flag=True, help="Sign new labels even for items that have one.")
@pass_ctx
def labels_issue(ctx: Context, exam: str | None, reissue: bool) -> None:
    """Sign a label for every item (and a badge for every person) that has none, and enter the new
    labels in the custody log: stations accept a label only once the log holds it."""
    from store.issuance import issue_badges, issue_item_labels
    from store.ledger import Ledger

    instance = ctx.instance()
    exam = exam or instance.current_exam()
    signed = issue_item_labels(instance, exam, now(), reissue=reissue)
    badges = issue_badges(instance, exam, now())
    logged = Ledger(instance).record_labels(exam)
    click.echo(f"signed {signed} item label(s) and {badges} staff badge(s); {logged} label(s) entered in the log")


@labels.command("text")
@click.argument("item")
@click.option("--exam", help="Exam code (default: the current exam).")
@pass_ctx
def labels_text(ctx: Context, item: str, exam: str | None) -> None:
    """Print one item's label text (the QR content)."""
    from store.queries import label_text_of

    instance = ctx.instance()
    click.echo(label_text_of(instance, exam or instance.current_exam(), item))


@labels.command("verify")
@click.argument("text")
@click.option("--keys", "keys_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Verify offline against a keys.json (from `keys list --json` or an export) "
                   "instead of an instance.")
@pass_ctx
def labels_verify(ctx: Context, text: str, keys_file: Path | None) -> None:
    """Decode and verify a label text; prints JSON. Exit 1 if the label is refused."""
    from custody.errors import LabelError, MalformedLabel
    from custody.labels import verify_label
    from store.queries import keyring_from_json

    if keys_file:
        # The key list is the user's input, not the label: one that cannot be read is a usage error (2),
        # not a refused label (1).
        try:
            ring = keyring_from_json(keys_file.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise click.BadParameter("the key file is not a custody key list: not UTF-8 text",
                                     param_hint="--keys") from None
        except MalformedLabel as exc:
            raise click.BadParameter(str(exc), param_hint="--keys") from None
    else:
        ring = ctx.instance().keys.keyring()
    try:
        label = verify_label(text, ring)
    except LabelError as exc:
        emit_json({"valid": False, "error": _error_code(exc), "message": str(exc)})
        click.echo(f"refused: {exc}", err=True)
        raise SystemExit(exc.exit_code) from None
    emit_json(label.as_json())


def _error_code(exc: Exception) -> str:
    name = type(exc).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


@labels.command("pdf")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--subject", help="Only this subject.")
@click.option("--unit", help="Only items bound for this unit or below it (a site, a county).")
@click.option("--box", help="Only this box and what it holds.")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@click.option("--exam", help="Exam code (default: the current exam).")
@pass_ctx
def labels_pdf(ctx: Context, out: Path, subject: str | None, unit: str | None, box: str | None, lang: str,
               exam: str | None) -> None:
    """Print labels to an A4 PDF with cut marks."""
    from printing.sheet import write_label_pdf
    from store.queries import printable_labels

    instance = ctx.instance()
    chosen = printable_labels(instance, exam or instance.current_exam(), subject=subject, unit=unit, box=box)
    if not chosen:
        raise click.UsageError("no labelled items match; run `custody labels issue` first or widen the filter")
    written = _write_pdf_with_progress(write_label_pdf, chosen, out, lang)
    click.echo(f"wrote {written} label(s) to {out}")


def _write_pdf_with_progress(write, chosen, out: Path, lang: str) -> int:  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    with tqdm(total=len(chosen), unit="label", disable=not sys.stderr.isatty(), file=sys.stderr) as bar:
        return int(write(chosen, out, lang=lang, progress=bar.update))


@labels.command("png")
@click.argument("item")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@click.option("--exam", help="Exam code (default: the current exam).")
@pass_ctx
def labels_png(ctx: Context, item: str, out: Path, lang: str, exam: str | None) -> None:
    """Save one item's label as a PNG (300 dpi, recorded in the file so that it prints at true size)."""
    from printing.png import save_label_png
    from store.queries import printable_labels

    instance = ctx.instance()
    chosen = printable_labels(instance, exam or instance.current_exam(), item=item)  # NotFound if none
    save_label_png(chosen[0], out, lang=lang)
    click.echo(f"wrote {out}")


def _register_commands() -> None:
    """Commands that live in their own modules, next to the part of the system they drive."""
    from cli import investigate, logcmd, verifycmd
    from cli.demo import demo
    from cli.scan import scan
    from cli.serve import serve, users
    from cli.station import station

    for command in (demo, scan, serve, users, station):
        cli.add_command(command)
    for module in (logcmd, verifycmd, investigate):
        module.register(cli)


_register_commands()


def main() -> None:
    """The console entry point (``custody`` and ``python -m custody``)."""
    cli.main(prog_name="custody")
