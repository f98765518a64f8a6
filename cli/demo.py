"""``custody demo``: a realistic exam on the embedded default (SQLite), end to end."""

from __future__ import annotations

import secrets
import shutil
import sys
import time
from pathlib import Path

import click

from cli.context import Context, pass_ctx
from custody.errors import InstanceError
from store.instance import DEMO_MARKER


def prepare_demo_home(home: Path) -> bytes:
    """Wipe a previous demo instance (never a real one) and return the demo passphrase."""
    import os

    marker = home / DEMO_MARKER
    if home.exists() and any(home.iterdir()) and not marker.exists():
        raise InstanceError(f"{home} holds an instance that is not a demo; the demo will not touch it. "
                            "Choose another --home for the demo.")
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    secret = os.environ.get("CUSTODY_PASSPHRASE") or secrets.token_urlsafe(18)
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")
    return secret.encode("utf-8")


@click.command()
@click.option("--scale", type=click.Choice(["tiny", "city"]), default="city", show_default=True,
              help="city: Nanchang-sized (about 50 sites, 1,900 rooms); tiny: a few rooms.")
@click.option("--no-serve", is_flag=True, help="Stop before serving the web application.")
@click.option("--all-labels", is_flag=True, help="Print every label into the PDF (city: about 23,000).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@pass_ctx
def demo(ctx: Context, scale: str, no_serve: bool, all_labels: bool, host: str, port: int) -> None:
    """Run a realistic exam end to end on SQLite, then serve the web UI.

    Creates a demo instance in --home (wiping an earlier demo there, never a
    real instance), imports the sample Nanchang plan, issues labels and staff
    badges and prints a label sheet. Demo keys are protected by a throw-away
    passphrase kept in the demo folder: never use a demo instance for a real exam.
    """
    from custody.sample import EXAM, EXAM_NAME, sample_people, sample_plan
    from store import simulation
    from store.instance import init_instance
    from store.issuance import issue_badges, issue_item_labels
    from store.plans import import_people, import_plan, read_plan_files, write_plan_files

    started = time.perf_counter()
    home = ctx.home
    secret = prepare_demo_home(home)
    # The demo replays June 2017: every clock (keys, labels, stations, the log) is the exam's.
    instance, _ = init_instance(home, origin=f"nanchang.exam/{EXAM}", institute="3601", now=simulation.SETUP_AT,
                                secret=secret, url=f"sqlite:///{home / 'custody.db'}")
    ctx._instance = instance
    click.echo(f"demo instance: {home}")

    # The plan goes through the same files and importer an officer would use.
    plan_dir = home / "plan"
    write_plan_files(sample_plan(scale), plan_dir)
    exam_plan = read_plan_files(plan_dir, EXAM, EXAM_NAME)
    with instance.db.write_session() as s:
        count = import_plan(s, exam_plan, simulation.SETUP_AT, seal_prefix="FT17")
        import_people(s, sample_people(exam_plan))
    instance.set_setting("exam", EXAM)
    click.echo(f"plan: {len(exam_plan.subjects)} subjects, {len(exam_plan.of_kind_site())} sites, "
               f"{len(exam_plan.rooms())} rooms, {exam_plan.candidates} candidates -> {count} items")

    signed = issue_item_labels(instance, EXAM, simulation.LABELS_AT)
    badges = issue_badges(instance, EXAM, simulation.LABELS_AT)
    click.echo(f"labels: {signed} item labels and {badges} staff badges signed")

    from printing.sheet import write_label_pdf
    from store.queries import printable_labels

    first_site = exam_plan.of_kind_site()[0].code
    chosen = printable_labels(instance, EXAM) if all_labels or scale == "tiny" else \
        printable_labels(instance, EXAM, unit=first_site)
    pdf = home / "labels" / ("labels.pdf" if all_labels or scale == "tiny" else f"labels-{first_site}.pdf")
    pdf.parent.mkdir(exist_ok=True)
    write_label_pdf(chosen, pdf)
    click.echo(f"label sheet: {pdf} ({len(chosen)} labels)")

    from tqdm import tqdm

    from store.ledger import Ledger

    with tqdm(desc="handovers", unit="event", disable=not sys.stderr.isatty(), file=sys.stderr) as bar:
        counts = simulation.run(instance, exam_plan, progress=bar.update)
    ledger = Ledger(instance)
    alerts = ledger.alerts(limit=100000)
    click.echo(f"custody log: {ledger.size()} leaves; handovers {counts}; {len(alerts)} alerts "
               f"(e.g. {', '.join(sorted({a['code'] for a in alerts})[:6])})")
    click.echo(f"latest checkpoint:\n{ledger.latest_checkpoint()}")
    click.echo(f"demo ready in {time.perf_counter() - started:.1f} s")
    if no_serve:
        return
    from cli.serve import serve_instance

    serve_instance(instance, host=host, port=port, demo=True)
