"""What one printed label shows: the QR text and the fields people read."""

from __future__ import annotations

from dataclasses import dataclass

from custody.labels import ItemKind
from custody.plan import ExamPlan, PlannedItem, UnitKind

LANGS = ("zh", "en")


@dataclass(frozen=True)
class PrintableLabel:
    """One label as printed. ``text`` is the signed QR text; the rest is for people.

    ``site_name`` is the exam site (考点) for items bound for a site or a room,
    otherwise the name of the destination unit (a county office, the grading
    centre). ``room_name`` is the exam room (考场), or ``None``. ``count`` is
    what the label's ``count`` says (papers, cards, bundles in a box).
    """

    text: str
    item_id: str
    kind: ItemKind
    exam_name: str
    subject_name: str
    site_name: str
    room_name: str | None
    count: int
    seal: str | None
    destination: str


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {', '.join(LANGS)}, found {lang!r}")
    return lang


def printable_label(plan: ExamPlan, item: PlannedItem, text: str, *, lang: str = "zh") -> PrintableLabel:
    """The printable form of a planned item whose label text is ``text``.

    ``lang="en"`` takes the subject's English name when the plan has one; unit
    names are printed as the plan spells them.
    """
    check_lang(lang)
    subject_name = ""
    if item.subject:
        subject = plan.subject(item.subject)
        subject_name = (subject.name_en or subject.name) if lang == "en" else subject.name
    unit = plan.unit(item.destination)
    room_name: str | None = None
    site_name = unit.name
    if unit.kind is UnitKind.ROOM:
        room_name = unit.name
        site = plan.nearest(unit.code, UnitKind.SITE)
        site_name = site.name if site is not None else unit.name
    return PrintableLabel(
        text=text,
        item_id=item.item_id,
        kind=item.kind,
        exam_name=plan.name,
        subject_name=subject_name,
        site_name=site_name,
        room_name=room_name,
        count=item.count,
        seal=item.seal,
        destination=item.destination,
    )
