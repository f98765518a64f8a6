"""The investigation report for people: HTML (Jinja2, inline SVG timeline) and PDF (reportlab).

Both render one view (:func:`report_view`) of a :class:`custody.investigation.Report`, in Chinese
(``zh``, the default) or English: the conclusion, the timeline chart (one lane per accountable
unit: held, stored, in transit, opened, gaps in red, anomalies as marks, the start of the exam
and the leak as lines), the tier summary (分级负责) ranked with its reasons, the scope and backup
papers (副题), each detailed item's custody windows, gaps and anomalies, and the evidence: the
log's verifier key, the signed checkpoint, and every cited leaf's index, hash and inclusion proof
(all of them in the HTML; in the PDF those of the detailed items, the rest in the JSON report).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from custody.investigation import TIER_NAMES, ItemCustody, Report
from custody.plan import LOCAL_TZ

TEMPLATES = Path(__file__).with_name("templates")
MAX_RANKED = 30
MAX_DETAILED = 12
MAX_LANES = 14

KIND_COLOURS = {"before_first_scan": "#c9d6e3", "held": "#4a7ab5", "stored": "#1f3f6b", "transit": "#e39b3b",
                "opened": "#9aa3ad", "destroyed": "#555555", "gap": "#d7263d"}

TEXT: dict[str, dict[str, str]] = {
    "title": {"zh": "失泄密调查报告", "en": "Leak investigation report"},
    "subject": {"zh": "科目", "en": "Subject"},
    "exam_time": {"zh": "考试时间", "en": "Session"},
    "log": {"zh": "依据日志", "en": "Log"},
    "tree": {"zh": "检查点树大小", "en": "checkpoint tree size"},
    "query": {"zh": "调查条件", "en": "Query"},
    "leaked_item": {"zh": "泄密物品", "en": "leaked item"},
    "leaked_unit": {"zh": "发现单位", "en": "found at unit"},
    "leak_time": {"zh": "泄密时间", "en": "leak time"},
    "as_of": {"zh": "截至", "en": "as of"},
    "none": {"zh": "（未指定）", "en": "(not given)"},
    "conclusion": {"zh": "结论", "en": "Conclusion"},
    "first": {"zh": "最可能的泄密环节", "en": "Likeliest point of exposure"},
    "timeline": {"zh": "保管时间线（每个单位一行）", "en": "Custody timeline (one lane per unit)"},
    "ranking": {"zh": "分级负责汇总（按可能性排序）", "en": "Tiered responsibility, ranked"},
    "rank": {"zh": "名次", "en": "Rank"},
    "unit": {"zh": "单位", "en": "Unit"},
    "tier": {"zh": "层级", "en": "Tier"},
    "score": {"zh": "分值", "en": "Score"},
    "items": {"zh": "物品", "en": "Items"},
    "hours": {"zh": "开考前保管（小时）", "en": "Hours before start"},
    "people": {"zh": "经手人", "en": "People"},
    "anomalies": {"zh": "异常", "en": "Anomalies"},
    "gaps": {"zh": "保管空档", "en": "Gaps"},
    "reasons": {"zh": "排序依据", "en": "Why this rank"},
    "why": {"zh": "依据", "en": "Why"},
    "scope": {"zh": "锁定范围与副题", "en": "Scope and backup papers"},
    "scenario2": {"zh": "情况二（传播范围较广）：启用副题的地区",
                  "en": "Scenario 2 (spread): areas that switch to the backup paper"},
    "scenario3": {"zh": "情况三（贩卖或媒体登载）：延期或宣布无效的地区",
                  "en": "Scenario 3 (sold or published): the area"},
    "before": {"zh": "考前发现：启用副题 / 延期举行", "en": "found before the exam: backup paper / postpone"},
    "after": {"zh": "考后发现：该科目考试无效", "en": "found after the exam: the subject is void"},
    "backups": {"zh": "所需副题", "en": "Backup papers needed"},
    "papers": {"zh": "份数", "en": "Papers"},
    "candidates": {"zh": "考生数", "en": "Candidates"},
    "holder": {"zh": "现保管单位", "en": "Held by"},
    "status": {"zh": "状态", "en": "Status"},
    "since": {"zh": "自", "en": "Since"},
    "clean": {"zh": "保管记录", "en": "Own custody"},
    "clean_yes": {"zh": "完好", "en": "clean"},
    "clean_no": {"zh": "有问题", "en": "NOT clean"},
    "details": {"zh": "物品保管明细", "en": "Item custody"},
    "windows": {"zh": "保管时段", "en": "Custody windows"},
    "kind": {"zh": "类型", "en": "Kind"},
    "from": {"zh": "起", "en": "From"},
    "to": {"zh": "止", "en": "To"},
    "leaves": {"zh": "日志叶", "en": "Leaves"},
    "still": {"zh": "至今", "en": "still"},
    "evidence": {"zh": "证据（可离线验证）", "en": "Evidence (verifiable offline)"},
    "evidence_note": {"zh": "每条记录的叶索引、叶哈希与包含证明（c2sp.org/tlog-proof@v1），对应下列签名检查点；"
                            "可用日志公钥离线验证。",
                      "en": "Each record's leaf index, leaf hash and inclusion proof (c2sp.org/tlog-proof@v1) against "
                            "the signed checkpoint below; verify offline with the log's key."},
    "vkey": {"zh": "日志公钥", "en": "Log verifier key"},
    "checkpoint": {"zh": "签名检查点", "en": "Signed checkpoint"},
    "witnessed": {"zh": "见证方联署的检查点（树大小 {n}）及其到上方检查点的一致性证明",
                  "en": "Checkpoint cosigned by a witness (tree size {n}) and the consistency proof to the one above"},
    "unwitnessed": {"zh": "尚无见证方联署的检查点", "en": "No checkpoint cosigned by a witness yet"},
    "more_units": {"zh": "另有 {n} 个单位，见 JSON 报告", "en": "{n} more units in the JSON report"},
    "more_items": {"zh": "另有 {n} 件物品，见 JSON 报告", "en": "{n} more items in the JSON report"},
    "pdf_proofs": {"zh": "此处列出明细物品的证明（每条证明后接上方的签名检查点即为完整的 tlog-proof）；"
                          "全部 {n} 条记录的证明见 JSON 报告。",
                   "en": "Proofs of the detailed items are listed here (each, followed by the checkpoint above, is "
                         "the full tlog-proof); all {n} records' proofs are in the JSON report."},
    "zoom": {"zh": "考前36小时（放大）", "en": "The eve of the exam (zoomed)"},
    "start": {"zh": "开考", "en": "start"},
    "leak": {"zh": "泄密", "en": "leak"},
    "photo": {"zh": "照片中的标签", "en": "Labels in the photo"},
    "verified": {"zh": "签名有效", "en": "signature valid"},
    "notes": {"zh": "说明", "en": "Notes"},
    "rule": {"zh": "范围规则：情况二取曾保管泄密材料的单位及发现单位所在县区（属地管理，副题按县区储备）；"
                   "情况三为全市所有考区。",
             "en": "Rule: scenario 2 covers the county/district of every unit that held the leaked material and of "
                   "the unit where it was found (属地管理; backup papers are stocked per county); scenario 3 the "
                   "whole city."},
}

KINDS = {"before_first_scan": ("签发后首次交接前", "before first handover"), "held": ("保管", "held"),
         "stored": ("保密室存放", "stored"), "transit": ("运送中", "in transit"), "opened": ("已启封", "opened"),
         "destroyed": ("已销毁", "destroyed"), "gap": ("空档", "gap")}


#: Item kinds as the report names them (the label sheet prints its own, shorter words: printing.layout).
ITEM_KINDS = {"paper_bundle": ("试卷袋", "paper bundle"), "answer_card_bundle": ("答题卡袋", "answer-card bundle"),
              "listening_disc": ("听力光盘", "listening disc"), "answer_key": ("答案", "answer key"),
              "backup_paper": ("副题", "backup paper"), "box": ("试卷箱", "box"), "badge": ("工作证", "staff badge")}


def t(key: str, lang: str, **values: object) -> str:
    text = TEXT[key]["zh" if lang == "zh" else "en"]
    return text.format(**values) if values else text


def named(name: str, *details: object, lang: str = "zh") -> str:
    """A name with its code (and more) in brackets: full-width in Chinese, ASCII in English."""
    inside = ("，" if lang == "zh" else ", ").join(str(d) for d in details)
    return f"{name}（{inside}）" if lang == "zh" else f"{name} ({inside})"


def joined(parts: Sequence[str], lang: str = "zh", *, clauses: bool = False) -> str:
    """Names (、 / ,) or clauses (； / ;) in a row, with the language's punctuation."""
    if clauses:
        return ("；" if lang == "zh" else "; ").join(parts)
    return ("、" if lang == "zh" else ", ").join(parts)


def anomaly_codes(anomalies: Iterable[Any], sep: str = ",") -> str:
    """The codes of a unit's anomalies for a ranking row: what counts first, then in parentheses the
    ``info`` ones (explained by a late upload, a report of an item found), which are not scored."""
    counted = sorted({a.code for a in anomalies if a.severity != "info"})
    noted = sorted({a.code for a in anomalies if a.severity == "info"} - set(counted))
    return sep.join(counted + [f"({code})" for code in noted])


def when(value: datetime | None, lang: str = "zh") -> str:
    if value is None:
        return t("still", lang)
    return value.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")


# --- the timeline --------------------------------------------------------------------------


@dataclass
class Lane:
    unit: str
    label: str
    bars: list[tuple[datetime, datetime, str]] = field(default_factory=list)
    marks: list[tuple[datetime, str, str]] = field(default_factory=list)


@dataclass
class Timeline:
    start: datetime
    end: datetime
    lanes: list[Lane]
    lines: list[tuple[datetime, str]]
    hidden: int = 0


def _merge(bars: list[tuple[datetime, datetime, str]]) -> list[tuple[datetime, datetime, str]]:
    out: list[tuple[datetime, datetime, str]] = []
    for a, b, kind in sorted(bars, key=lambda x: (x[2], x[0])):
        if out and out[-1][2] == kind and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b), kind)
        else:
            out.append((a, b, kind))
    return out


def timeline(report: Report, lang: str = "zh", max_lanes: int = MAX_LANES, *, zoom: bool = False) -> Timeline:
    """Lanes of the focus items' custody: the top-ranked units first, one lane each.

    The whole custody from the first receipt to after the session; ``zoom``: the eve of the
    exam, from 36 hours before the start (or the leak, if earlier) to 4 hours after the start.
    """
    custodies = report.focus_custodies
    subject = report.subject
    if zoom:
        t0 = min(subject.starts_at, report.leak_time or subject.starts_at) - timedelta(hours=36)
        t1 = subject.starts_at + timedelta(hours=4)
    else:
        starts = [w.start for c in custodies for w in c.windows if w.kind != "before_first_scan"]
        t0 = (min(starts) if starts else subject.starts_at - timedelta(days=1)) - timedelta(hours=6)
        t1 = max(subject.ends_at, report.leak_time or subject.ends_at) + timedelta(hours=6)
        t1 = min(t1, max(report.until, t0 + timedelta(hours=12)))
    order = [u.unit for u in report.ranking]
    shown = order[:max_lanes]
    lanes = {u: Lane(u, f"{report.unit_name(u)}（{u}）" if lang == "zh" else f"{u} {report.unit_name(u)}")
             for u in shown}
    for c in custodies:
        for w in c.windows:
            lane = lanes.get(w.accountable)
            if lane is None:
                continue
            a, b = max(w.start, t0), min(w.end or report.until, t1)
            if b > a:
                lane.bars.append((a, b, w.kind))
        for g in c.gaps:
            lane = lanes.get(g.after_accountable or "")
            if lane is not None:
                a, b = max(g.start, t0), min(g.end or report.until, t1)
                if b > a:
                    lane.bars.append((a, b, "gap"))
        for an in c.anomalies:
            lane = lanes.get(an.accountable or "")
            if lane is not None and an.time is not None and t0 <= an.time <= t1 and an.severity != "info":
                lane.marks.append((an.time, an.severity, an.code))
    for lane in lanes.values():
        merged = _merge(lane.bars)
        lane.bars = [b for b in merged if b[2] != "gap"] + [b for b in merged if b[2] == "gap"]
        # critical marks drawn last, on top
        lane.marks = sorted(set(lane.marks), key=lambda m: (m[1] == "critical", m[0], m[2]))
    lines = [(subject.starts_at, t("start", lang))]
    if report.leak_time and t0 <= report.leak_time <= t1:
        lines.append((report.leak_time, t("leak", lang)))
    return Timeline(t0, t1, [lanes[u] for u in shown], lines, max(0, len(order) - len(shown)))


def _ticks(tl: Timeline) -> list[tuple[datetime, str]]:
    span = (tl.end - tl.start).total_seconds() / 86400
    if span <= 3:
        step, fmt = timedelta(hours=6), "%m-%d %H:%M"
        tick = tl.start.astimezone(LOCAL_TZ).replace(minute=0, second=0, microsecond=0)
        tick += timedelta(hours=(6 - tick.hour % 6) % 6 or 6)
    else:
        step = timedelta(days=1 if span <= 12 else 2 if span <= 24 else 7)
        fmt = "%m-%d"
        tick = tl.start.astimezone(LOCAL_TZ).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    out = []
    while tick < tl.end:
        out.append((tick, tick.strftime(fmt)))
        tick += step
    return out


def charts(report: Report, lang: str) -> list[tuple[str, Timeline]]:
    """The whole timeline, and the exam's eve zoomed when the whole spans more than three days."""
    whole = timeline(report, lang)
    out = [(t("timeline", lang), whole)]
    if whole.end - whole.start > timedelta(days=3):
        out.append((t("zoom", lang), timeline(report, lang, zoom=True)))
    return out


def timeline_svg(tl: Timeline, lang: str = "zh", width: int = 960) -> str:
    """The chart as inline SVG."""
    label_w, lane_h, top = 230, 22, 28
    plot_w = width - label_w - 10
    height = top + lane_h * max(1, len(tl.lanes)) + 40
    span = (tl.end - tl.start).total_seconds() or 1.0

    def x(moment: datetime) -> float:
        return label_w + plot_w * (moment - tl.start).total_seconds() / span

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-size="11" role="img">']
    for tick, text in _ticks(tl):
        parts.append(f'<line x1="{x(tick):.1f}" y1="{top - 4}" x2="{x(tick):.1f}" y2="{height - 36}" '
                     'stroke="#ddd"/>')
        parts.append(f'<text x="{x(tick):.1f}" y="{top - 8}" text-anchor="middle" fill="#555">{text}</text>')
    for n, lane in enumerate(tl.lanes):
        y = top + n * lane_h
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{html.escape(lane.label)}</text>')
        parts.append(f'<line x1="{label_w}" y1="{y + lane_h}" x2="{width - 10}" y2="{y + lane_h}" stroke="#eee"/>')
        for a, b, kind in lane.bars:
            height_bar = 8 if kind == "gap" else 12
            bar_w = max(1.5, x(b) - x(a))
            parts.append(f'<rect x="{x(a):.1f}" y="{y + (11 - height_bar / 2):.1f}" width="{bar_w:.1f}" '
                         f'height="{height_bar}" fill="{KIND_COLOURS.get(kind, "#888")}"><title>'
                         f'{html.escape(KINDS.get(kind, (kind, kind))[0 if lang == "zh" else 1])} '
                         f'{when(a)} – {when(b)}</title></rect>')
        for moment, severity, code in lane.marks:
            colour = "#d7263d" if severity == "critical" else "#f0a202"
            cx = x(moment)
            parts.append(f'<path d="M{cx:.1f},{y + 2} l5,9 l-10,0 z" fill="{colour}" stroke="#fff" stroke-width="0.5">'
                         f'<title>{html.escape(code)} {when(moment)}</title></path>')
    for moment, text in tl.lines:
        parts.append(f'<line x1="{x(moment):.1f}" y1="{top - 4}" x2="{x(moment):.1f}" y2="{height - 36}" '
                     'stroke="#d7263d" stroke-dasharray="4,3"/>')
        parts.append(f'<text x="{x(moment) + 3:.1f}" y="{height - 38}" fill="#d7263d">{html.escape(text)}</text>')
    legend_y, lx = height - 16, label_w
    for kind in ("held", "stored", "transit", "opened", "gap"):
        parts.append(f'<rect x="{lx}" y="{legend_y - 9}" width="14" height="10" fill="{KIND_COLOURS[kind]}"/>')
        name = KINDS[kind][0 if lang == "zh" else 1]
        parts.append(f'<text x="{lx + 18}" y="{legend_y}">{html.escape(name)}</text>')
        lx += 30 + 12 * len(name) if lang == "zh" else 30 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)


# --- the view both renderers use ----------------------------------------------------------


def _detailed(report: Report) -> list[ItemCustody]:
    focus = report.focus_custodies
    if report.query.get("leaked_item") or report.query.get("leaked_unit"):
        return focus[:MAX_DETAILED]
    flagged = [c for c in focus if c.gaps or any(a.severity == "critical" for a in c.anomalies)]
    return flagged[:MAX_DETAILED]


def _names(report: Report, staff: Sequence[str], lang: str, limit: int = 6) -> str:
    shown = [f"{report.people.get(s, s)}" for s in staff[:limit]]
    return joined(shown, lang) + ("…" if len(staff) > limit else "")


def report_view(report: Report, lang: str = "zh") -> dict[str, Any]:
    """Everything the templates show, as plain values, localised."""
    zh = lang == "zh"
    subject = report.subject
    ranking = []
    for u in report.ranking[:MAX_RANKED]:
        ranking.append({
            "rank": u.rank, "unit": u.unit, "name": report.unit_name(u.unit),
            "label": named(report.unit_name(u.unit), u.unit, lang=lang),
            "tier": TIER_NAMES.get(u.tier, (u.tier, u.tier))[0 if zh else 1], "score": f"{u.score:.1f}",
            "items": len(u.items), "item_list": ", ".join(u.items[:8]) + ("…" if len(u.items) > 8 else ""),
            "hours": f"{u.hours_before_start:.1f}", "people": _names(report, u.people, lang),
            "anomalies": anomaly_codes(u.anomalies, ", "), "gaps": len(u.gaps),
            "reasons": [(f"{r.points:.1f}", r.zh if zh else r.en) for r in u.reasons]})
    details = []
    for c in _detailed(report):
        kind = ITEM_KINDS.get(c.item.kind.slug, (c.item.kind.slug, c.item.kind.slug))[0 if zh else 1]
        destination = named(report.unit_name(c.item.destination), c.item.destination, lang=lang)
        hours = [(named(report.unit_name(u), u, lang=lang), f"{h:.1f}")
                 for u, h in sorted(c.hours_before_start.items(), key=lambda x: -x[1])]
        details.append({
            "id": c.item.item_id, "kind": kind, "destination": c.item.destination,
            "heading": f"{named(c.item.item_id, kind, lang=lang)} → {destination}",
            "destination_name": report.unit_name(c.item.destination), "count": c.item.count, "seal": c.item.seal,
            "box": c.item.parent_box,
            "windows": [{"unit": w.unit, "name": report.unit_name(w.unit),
                         "label": named(report.unit_name(w.unit), w.unit, lang=lang),
                         "tier": TIER_NAMES.get(report.units.get(w.accountable, {}).get("tier", ""),
                                                ("", ""))[0 if zh else 1],
                         "kind": KINDS.get(w.kind, (w.kind, w.kind))[0 if zh else 1], "raw_kind": w.kind,
                         "from": when(w.start, lang), "to": when(w.end, lang), "people": _names(report, w.people, lang),
                         "leaves": f"{w.start_index if w.start_index is not None else '–'} → "
                                   f"{w.end_index if w.end_index is not None else '…'}",
                         "via_box": w.via_box or ""} for w in c.windows],
            "gaps": [{"code": g.code, "from": when(g.start, lang), "to": when(g.end, lang),
                      "text": g.message_zh if zh else g.message,
                      "leaves": f"{g.start_index} → {g.end_index if g.end_index is not None else '…'}"}
                     for g in c.gaps],
            "anomalies": [{"code": a.code, "severity": a.severity, "time": when(a.time, lang), "index": a.index,
                           "unit": a.unit or "", "text": a.message_zh if zh else a.message,
                           "source": a.source, "via_box": a.via_box or ""} for a in c.anomalies],
            "hours": hours, "hours_text": joined([f"{u} {h}" for u, h in hours], lang, clauses=True),
            "indexes": list(c.indexes) + ([c.item.label_index] if c.item.label_index is not None else [])})
    scope = report.scope

    def area_rows(areas: Sequence[Any]) -> list[dict[str, Any]]:
        return [{"county": a.county, "name": report.unit_name(a.county), "candidates": a.candidates,
                 "label": named(report.unit_name(a.county), a.county, lang=lang),
                 "why": joined(a.why_zh if zh else a.why, lang, clauses=True)} for a in areas]

    def stock_rows(stocks: Sequence[Any]) -> list[dict[str, Any]]:
        return [{"item": b.item, "county": report.unit_name(b.county), "papers": b.papers,
                 "candidates": b.candidates,
                 "holder": named(report.unit_name(b.holder), b.holder, lang=lang) if b.holder else "–",
                 "status": KINDS.get(b.status, (b.status, b.status))[0 if zh else 1], "since": when(b.since, lang),
                 "clean": t("clean_yes" if b.clean else "clean_no", lang),
                 "problems": joined(b.problems_zh if zh else b.problems, lang, clauses=True)} for b in stocks]

    top = report.ranking[0] if report.ranking else None
    query = report.query
    return {
        "lang": lang, "t": {k: v["zh" if zh else "en"] for k, v in TEXT.items()},
        "exam": report.exam_name, "subject": f"{subject.name}（{subject.code}）" if zh else
        f"{subject.name_en or subject.name} ({subject.code})",
        "session": f"{when(subject.starts_at)} – {subject.ends_at.astimezone(LOCAL_TZ).strftime('%H:%M')}",
        "tree_size": report.tree_size, "checkpoint": report.checkpoint, "log_key": report.log_key,
        "witnessed": report.witnessed,
        "query": [(t("leaked_item", lang), query.get("leaked_item") or t("none", lang)),
                  (t("leaked_unit", lang), query.get("leaked_unit") or t("none", lang)),
                  (t("leak_time", lang), when(report.leak_time, lang) if report.leak_time
                   else t("none", lang)),
                  (t("as_of", lang), when(report.until, lang))],
        "top": None if top is None else {"unit": top.unit, "name": report.unit_name(top.unit),
                                         "label": named(report.unit_name(top.unit), top.unit, lang=lang),
                                         "tier": TIER_NAMES.get(top.tier, (top.tier, top.tier))[0 if zh else 1],
                                         "score": f"{top.score:.1f}",
                                         "reasons": [(f"{r.points:.1f}", r.zh if zh else r.en) for r in top.reasons]},
        "ranking": ranking, "more_units": max(0, len(report.ranking) - MAX_RANKED),
        "details": details, "more_items": max(0, len(report.focus) - len(details)),
        "timing": t("before" if scope.timing == "before" else "after", lang),
        "scenario2": area_rows(scope.scenario2), "scenario3": area_rows(scope.scenario3),
        "scenario3_text": joined([named(report.unit_name(a.county), a.county, a.candidates, lang=lang)
                                  for a in scope.scenario3], lang),
        "backups2": stock_rows(scope.backups2), "backups3": stock_rows(scope.backups3),
        "papers2": scope.papers2, "papers3": scope.papers3,
        "notes": list(scope.notes_zh if zh else scope.notes),
        "photo": report.photo,
    }


# --- HTML ---------------------------------------------------------------------------------------


#: Up to this many cited leaves, a page lists every proof; above, those of the detailed items and of
#: the findings of the top-ranked units (the JSON report always has all of them).
MAX_PAGE_PROOFS = 2000


def shown_evidence(report: Report, view: dict[str, Any]) -> tuple[list[int], int]:
    """The leaf indexes whose proofs a page shows, and how many the report cites in all."""
    cited = report.cited()
    if len(cited) <= MAX_PAGE_PROOFS:
        return cited, len(cited)
    shown = {i for d in view["details"] for i in d["indexes"]}
    for u in report.ranking[:MAX_RANKED]:
        shown.update(a.index for a in u.anomalies)
        shown.update(i for g in u.gaps for i in (g.start_index, g.end_index) if i is not None)
    return sorted(i for i in shown if i in report.hashes), len(cited)


def render_html(report: Report, lang: str = "zh") -> str:
    """The report as one self-contained HTML page (inline CSS and SVG)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from markupsafe import Markup

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))
    view = report_view(report, lang)
    indexes, total = shown_evidence(report, view)
    proofs = report.proofs(indexes)
    events = [{"index": i, "hash": report.hashes[i].hex(), "proof": proofs.get(i, ""),
               "what": _event_label(report, i)} for i in indexes]
    svgs = [(title, Markup(timeline_svg(chart, lang))) for title, chart in charts(report, lang)]
    return env.get_template("investigation.html").render(
        v=view, charts=svgs, events=events,
        more_proofs=t("pdf_proofs", lang, n=total) if len(indexes) < total else "")


def _event_label(report: Report, index: int) -> str:
    scan = report.scans.get(index)
    if scan is None:
        return "label" if any(c.item.label_index == index for c in report.custodies) else "record"
    return f"{scan.item} {scan.action} {scan.from_unit or ''}→{scan.to_unit or ''} {when(scan.time)}"


# --- PDF ----------------------------------------------------------------------------------------


def timeline_drawing(tl: Timeline, lang: str, font: str, width: float) -> Any:
    """The chart as a reportlab Drawing (vector, in the PDF)."""
    from reportlab.graphics.shapes import Drawing, Line, Polygon, Rect, String
    from reportlab.lib.colors import HexColor

    label_w, lane_h, top = 150.0, 15.0, 18.0
    plot_w = width - label_w - 6
    height = top + lane_h * max(1, len(tl.lanes)) + 30
    span = (tl.end - tl.start).total_seconds() or 1.0
    d = Drawing(width, height)

    def x(moment: datetime) -> float:
        return label_w + plot_w * (moment - tl.start).total_seconds() / span

    def y(n: int) -> float:  # reportlab's y grows upwards
        return height - top - (n + 1) * lane_h

    grid = HexColor("#dddddd")
    for tick, text in _ticks(tl):
        d.add(Line(x(tick), y(len(tl.lanes) - 1) - 2, x(tick), height - top + 4, strokeColor=grid, strokeWidth=0.4))
        d.add(String(x(tick), height - top + 6, text, fontName=font, fontSize=6, textAnchor="middle",
                     fillColor=HexColor("#555555")))
    for n, lane in enumerate(tl.lanes):
        base = y(n)
        label = lane.label if len(lane.label) <= 22 else lane.label[:21] + "…"
        d.add(String(label_w - 4, base + 4, label, fontName=font, fontSize=6.5, textAnchor="end"))
        d.add(Line(label_w, base, width - 6, base, strokeColor=HexColor("#eeeeee"), strokeWidth=0.3))
        for a, b, kind in lane.bars:
            h = 5.0 if kind == "gap" else 8.0
            d.add(Rect(x(a), base + (lane_h - h) / 2 - 1, max(1.0, x(b) - x(a)), h,
                       fillColor=HexColor(KIND_COLOURS.get(kind, "#888888")), strokeColor=None))
        for moment, severity, _code in lane.marks:
            cx = x(moment)
            colour = HexColor("#d7263d" if severity == "critical" else "#f0a202")
            d.add(Polygon([cx, base + lane_h - 2, cx - 3.5, base + lane_h - 9, cx + 3.5, base + lane_h - 9],
                          fillColor=colour, strokeColor=HexColor("#ffffff"), strokeWidth=0.3))
    red = HexColor("#d7263d")
    for moment, text in tl.lines:
        d.add(Line(x(moment), y(len(tl.lanes) - 1) - 2, x(moment), height - top + 4, strokeColor=red,
                   strokeWidth=0.7, strokeDashArray=[3, 2]))
        d.add(String(x(moment) + 2, y(len(tl.lanes) - 1) - 10, text, fontName=font, fontSize=6.5, fillColor=red))
    lx = label_w
    for kind in ("held", "stored", "transit", "opened", "gap"):
        d.add(Rect(lx, 3, 10, 7, fillColor=HexColor(KIND_COLOURS[kind]), strokeColor=None))
        name = KINDS[kind][0 if lang == "zh" else 1]
        d.add(String(lx + 13, 4, name, fontName=font, fontSize=6.5))
        lx += 22 + (7 if lang == "zh" else 3.6) * len(name)
    return d


def render_pdf(report: Report, out: str | Path | IO[bytes], lang: str = "zh") -> None:
    """The report as an A4 PDF (the Chinese font from :mod:`printing.fonts`) to a path or binary file."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import (
        KeepTogether,
        PageBreak,
        Paragraph,
        Preformatted,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    from printing.fonts import reportlab_font_name

    font = reportlab_font_name()
    v = report_view(report, lang)
    base = ParagraphStyle("base", fontName=font, fontSize=8.5, leading=11.5, wordWrap="CJK")
    small = ParagraphStyle("small", parent=base, fontSize=7, leading=9)
    h1 = ParagraphStyle("h1", parent=base, fontSize=15, leading=20, spaceAfter=4)
    h2 = ParagraphStyle("h2", parent=base, fontSize=11.5, leading=15, spaceBefore=8, spaceAfter=4,
                        textColor=colors.HexColor("#1f3f6b"))
    h3 = ParagraphStyle("h3", parent=base, fontSize=9.5, leading=13, spaceBefore=5, spaceAfter=2)
    mono = ParagraphStyle("mono", fontName="Courier", fontSize=5.6, leading=6.6)
    page_w = A4[0] - 30 * mm

    def p(text: object, style: ParagraphStyle = base) -> Paragraph:
        return Paragraph(html.escape(str(text)).replace("\n", "<br/>"), style)

    def table(header: Sequence[str], rows: Sequence[Sequence[object]], widths: Sequence[float]) -> Table:
        data = [[p(h, small) for h in header]] + [[p(c, small) for c in row] for row in rows]
        tbl = Table(data, colWidths=[w * page_w for w in widths], repeatRows=1)
        tbl.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#bbbbbb")),
                                 ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
                                 ("VALIGN", (0, 0), (-1, -1), "TOP"),
                                 ("LEFTPADDING", (0, 0), (-1, -1), 2), ("RIGHTPADDING", (0, 0), (-1, -1), 2)]))
        return tbl

    T = v["t"]
    story: list[Any] = [p(f"{T['title']} — {v['subject']}", h1), p(v["exam"]),
                        p(f"{T['exam_time']}: {v['session']}    {T['log']}: {T['tree']} {v['tree_size']}"),
                        p("    ".join(f"{k}: {val}" for k, val in v["query"]), small), Spacer(1, 4)]
    if v["top"]:
        top = v["top"]
        story += [p(T["conclusion"], h2),
                  p(f"{T['first']}: {named(top['name'], top['unit'], top['tier'], lang=lang)}"
                    f"{'，' if lang == 'zh' else ', '}{T['score']} {top['score']}"),
                  *[p(f"+{pts}  {why}", small) for pts, why in top["reasons"]]]
    if v["photo"]:
        story += [p(T["photo"], h3)] + [p(f"{f['item'] or '?'}: {T['verified'] if f['verified'] else f['error']}",
                                          small) for f in v["photo"]]
    for title, chart in charts(report, lang):
        story += [p(title, h2), timeline_drawing(chart, lang, font, page_w)]
    story += [p(T["ranking"], h2),
              table([T["rank"], T["unit"], T["tier"], T["score"], T["items"], T["hours"], T["people"],
                     T["anomalies"], T["gaps"]],
                    [[r["rank"], r["label"], r["tier"], r["score"], r["items"], r["hours"],
                      r["people"], r["anomalies"], r["gaps"]] for r in v["ranking"]],
                    [0.05, 0.2, 0.1, 0.07, 0.06, 0.09, 0.18, 0.19, 0.06])]
    if v["more_units"]:
        story.append(p(t("more_units", lang, n=v["more_units"]), small))
    story.append(p(T["reasons"], h3))
    for r in v["ranking"][:5]:
        story.append(p(f"{r['rank']}. {r['label']}: " + joined([f"+{pts} {why}" for pts, why in r["reasons"]],
                                                                   lang, clauses=True), small))
    story += [p(T["scope"], h2), p(v["timing"]), p(T["rule"], small), p(T["scenario2"], h3),
              table([T["unit"], T["candidates"], T["why"]],
                    [[a["label"], a["candidates"], a["why"]] for a in v["scenario2"]],
                    [0.25, 0.1, 0.65])]
    stock_header = ["副题" if lang == "zh" else "Backup", T["unit"], T["papers"], T["candidates"], T["holder"],
                    T["status"], T["since"], T["clean"]]
    stock_widths = [0.15, 0.13, 0.07, 0.07, 0.2, 0.1, 0.14, 0.14]

    def stock_table(rows: Sequence[dict[str, Any]]) -> Table:
        return table(stock_header, [[b["item"], b["county"], b["papers"], b["candidates"], b["holder"], b["status"],
                                     b["since"], b["clean"] + (("：" if lang == "zh" else ": ") + b["problems"]
                                                               if b["problems"] else "")]
                                    for b in rows], stock_widths)

    story += [p(f"{T['backups']}: {v['papers2']}", small), stock_table(v["backups2"]), p(T["scenario3"], h3),
              table([T["unit"], T["candidates"]], [[a["label"], a["candidates"]] for a in v["scenario3"]],
                    [0.4, 0.2]),
              p(f"{T['backups']}: {v['papers3']}", small), stock_table(v["backups3"])]
    for note in v["notes"]:
        story.append(p(f"· {note}", small))
    if v["details"]:
        story += [PageBreak(), p(T["details"], h2)]
    for d in v["details"]:
        block: list[Any] = [p(d["heading"], h3),
                            table([T["unit"], T["tier"], T["kind"], T["from"], T["to"], T["people"], T["leaves"]],
                                  [[w["label"] + (f" [{w['via_box']}]" if w["via_box"] else ""),
                                    w["tier"], w["kind"], w["from"], w["to"], w["people"], w["leaves"]]
                                   for w in d["windows"]], [0.22, 0.1, 0.1, 0.13, 0.13, 0.18, 0.14])]
        for g in d["gaps"]:
            block.append(p(f"■ {T['gaps']} {g['code']}: " + named(g["text"], f"{T['leaves']} {g['leaves']}", lang=lang),
                           small))
        for a in d["anomalies"]:
            block.append(p(f"{'●' if a['severity'] == 'critical' else '○'} [{a['severity']}] {a['code']} #{a['index']}"
                           f" {a['time']}: {a['text']}", small))
        story.append(KeepTogether(block[:2]))
        story.extend(block[2:])
    story += [PageBreak(), p(T["evidence"], h2), p(T["evidence_note"], small), p(T["vkey"], h3),
              Preformatted(v["log_key"], mono), p(T["checkpoint"], h3), Preformatted(v["checkpoint"], mono)]
    if v["witnessed"]:
        story += [p(T["witnessed"].format(n=v["witnessed"]["tree_size"]), h3),
                  Preformatted(v["witnessed"]["checkpoint"] + "\n" + v["witnessed"]["consistency"], mono)]
    else:
        story.append(p(T["unwitnessed"], small))
    shown, total = shown_evidence(report, v)
    if len(shown) == total:  # a small report: every proof is printed
        shown = sorted({i for d in v["details"] for i in d["indexes"]}) if v["details"] else shown
    proofs = report.proofs(shown)
    story.append(p(t("pdf_proofs", lang, n=total), small))
    for index in shown:
        digest = report.hashes.get(index)
        if digest is None:
            continue
        text = proofs.get(index, "")
        body = text.split("\n\n", 1)[0]  # the checkpoint is printed once, above
        story.append(KeepTogether([p(f"#{index} {_event_label(report, index)}  leaf {digest.hex()}",
                                     small), Preformatted(body, mono), Spacer(1, 2)]))

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(font, 7)
        canvas.drawString(15 * mm, 10 * mm, f"{T['title']} · {v['subject']} · {T['tree']} {v['tree_size']}")
        canvas.drawRightString(A4[0] - 15 * mm, 10 * mm, str(doc.page))
        canvas.restoreState()

    target: Any = str(out) if isinstance(out, (str, Path)) else out
    doc = SimpleDocTemplate(target, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=14 * mm,
                            bottomMargin=16 * mm, title=f"{T['title']} {report.subject.code}",
                            author=report.exam_name)
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
