"""``custody investigate``: the custody report of a leaked subject (锁定失、泄密科目和范围).

Start from what is known: the subject; optionally the leaked item (``--item``,
or ``--photo`` of the leaked paper or bag, whose labels are decoded and
verified), the room or unit where it turned up (``--unit``) and when
(``--leak-time``). ``--as-of`` reports on the log as it stood at the latest
checkpoint signed by then.

Outputs: ``--json`` (to stdout: the machine report with every event's leaf and
inclusion proof), ``--html FILE``, ``--pdf FILE`` (in Chinese, or English with
``--lang en``); with none of them, a short summary for the terminal.

Times are ISO 8601; a time without a zone is the exam's local time (UTC+8).
Exit codes: 0 the report was made; 2 a usage error or an unknown subject,
item or unit.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from cli.context import Context, now, pass_ctx
from custody.errors import CustodyError


def _time(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    from custody.plan import LOCAL_TZ

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"expected an ISO 8601 time like 2017-06-19T23:30+08:00, found {value!r}",
                                 ctx, param) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=LOCAL_TZ)


@click.command("investigate")
@click.option("--subject", envvar="CUSTODY_INVESTIGATE_SUBJECT", metavar="CODE",
              help="Subject code (e.g. YW). With --photo it may be left out: the label names it.")
@click.option("--as-of", callback=_time, envvar="CUSTODY_INVESTIGATE_AS_OF", metavar="TIME",
              help="Report on the log as of this time (the latest checkpoint signed by then).")
@click.option("--item", envvar="CUSTODY_INVESTIGATE_ITEM", metavar="ID", help="The leaked item (bundle, disc, key).")
@click.option("--unit", envvar="CUSTODY_INVESTIGATE_UNIT", metavar="CODE",
              help="The room or unit where the leak was found (a room: its paper bundle is the leaked item).")
@click.option("--leak-time", callback=_time, envvar="CUSTODY_INVESTIGATE_LEAK_TIME", metavar="TIME",
              help="When the paper leaked (first seen outside): custody after it cannot explain the leak.")
@click.option("--photo", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              envvar="CUSTODY_INVESTIGATE_PHOTO", help="A photo of the leaked paper or bag: its label opens the item.")
@click.option("--json", "as_json", is_flag=True, envvar="CUSTODY_INVESTIGATE_JSON",
              help="The JSON report (with every event's inclusion proof) to stdout.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), envvar="CUSTODY_INVESTIGATE_HTML",
              metavar="FILE", help="Write the report as an HTML page.")
@click.option("--pdf", "pdf_out", type=click.Path(dir_okay=False, path_type=Path), envvar="CUSTODY_INVESTIGATE_PDF",
              metavar="FILE", help="Write the report as a PDF.")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
              envvar="CUSTODY_INVESTIGATE_LANG", help="Language of the HTML and PDF reports.")
@click.option("--exam", envvar="CUSTODY_INVESTIGATE_EXAM", help="Exam code (default: the current exam).")
@pass_ctx
def investigate(ctx: Context, subject: str | None, as_of: datetime | None, item: str | None, unit: str | None,
                leak_time: datetime | None, photo: Path | None, as_json: bool, html_out: Path | None,
                pdf_out: Path | None, lang: str, exam: str | None) -> None:
    """The custody report of a leaked subject: who held which item when, the gaps, the scope."""
    from store import investigation

    if subject is None and photo is None:
        raise click.UsageError("give --subject (or --photo of a labelled bag or paper)")
    if photo is not None and item is not None:
        raise click.UsageError("give --item or --photo, not both")
    try:
        options: dict[str, Any] = {"as_of": as_of, "leaked_unit": unit, "leak_time": leak_time, "exam": exam,
                                   "now": now()}
        instance = ctx.instance()
        if photo is not None:
            report = investigation.investigate_photo(instance, photo, subject=subject, **options)
        else:
            assert subject is not None
            report = investigation.investigate(instance, subject, leaked_item=item, **options)
        if html_out is not None:
            from printing.report import render_html

            html_out.write_text(render_html(report, lang), encoding="utf-8")
            click.echo(f"wrote {html_out}", err=as_json)
        if pdf_out is not None:
            from printing.report import render_pdf

            render_pdf(report, pdf_out, lang)
            click.echo(f"wrote {pdf_out}", err=as_json)
        if as_json:
            sys.stdout.write(json.dumps(report.to_json(), ensure_ascii=False) + "\n")
        elif html_out is None and pdf_out is None:
            _summary(report, lang)
    except CustodyError as exc:
        # the command is an edge of its own when run outside the custody group
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(exc.exit_code) from None


def _summary(report: Any, lang: str) -> None:
    from printing.report import anomaly_codes, named, when

    zh = lang == "zh"
    s = report.subject
    subject = named(s.name if zh else s.name_en or s.name, s.code, lang=lang)
    click.echo(f"{subject} {when(s.starts_at)}  log size {report.tree_size}  items {len(report.custodies)}")
    click.echo("rank  score   unit                  tier     items  hours  anomalies")
    for u in report.ranking[:10]:
        codes = anomaly_codes(u.anomalies)
        click.echo(f"{u.rank:>4}  {u.score:>6.1f}  {u.unit:<20}  {u.tier:<7}  {len(u.items):>5}  "
                   f"{u.hours_before_start:>5.1f}  {codes}")
        for r in u.reasons[:3] if u.rank <= 3 else ():
            click.echo(f"{'':>14}+{r.points:.1f} {r.zh if zh else r.en}")
    gaps = [g for c in report.focus_custodies for g in c.gaps]
    for g in gaps[:10]:
        click.echo(f"gap {g.item}: {g.message_zh if zh else g.message}")
    scope = report.scope
    click.echo(f"scenario 2 ({scope.timing} the start): " + ", ".join(a.county for a in scope.scenario2)
               + f"; backup papers {scope.papers2}")
    click.echo("scenario 3: " + ", ".join(a.county for a in scope.scenario3) + f"; backup papers {scope.papers3}")
    for b in scope.backups3:
        state = "clean" if b.clean else "NOT CLEAN: " + "; ".join(b.problems)[:120]
        click.echo(f"  {b.item}: {b.papers} papers, {b.status} at {b.holder}, {state}")


def register(group: click.Group) -> None:
    """Add ``investigate`` to the custody command group."""
    group.add_command(investigate)
