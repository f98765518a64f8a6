"""The checks of one event: what it breaks, judged against the states before it.

A :class:`Judgement` is made per recorded event. Event-level checks (time,
people, and the scanned label's identity, seal and count) run once, on the
scanned item; item-level checks (order in time, place, opening, sequence) run
for every item the event moves. Nothing here changes a state: the tracker
applies the transition afterwards, with the facts the checks worked out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from custody.events import ACTION_ZH, Action, Event, SealCondition, scan_place
from custody.labels import ItemKind
from custody.plan import LOCAL_TZ, Subject, UnitKind
from custody.rules.codes import CODES, CRITICAL, WARNING
from custody.rules.model import PENDING, Alert, ItemInfo, ItemState, Sides, Status

if TYPE_CHECKING:
    from custody.rules.tracker import Tracker

#: Handovers: the giver (``from_unit``) must be where the item is.
HANDOVERS = frozenset({Action.RECEIVE, Action.DISTRIBUTE, Action.DEPART, Action.RETURN, Action.STORE,
                       Action.TAKE_OUT, Action.RECEIVE_FOR_GRADING})
#: Answer cards must be sealed before any of these once they were opened.
SEALED_FOR = HANDOVERS | {Action.ARRIVE}
#: Reports, not scans: they may come from anywhere (a supervisor, the institute).
REPORTS = frozenset({Action.MISSING, Action.FOUND})
_BROKEN = (SealCondition.DAMAGED, SealCondition.MISSING)


def local(when: datetime) -> str:
    return when.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M:%S")


def minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:.0f}"


@dataclass
class Judgement:
    tracker: Tracker
    event: Event
    received_at: datetime
    alerts: list[Alert] = field(default_factory=list)
    #: Changes to the scanned item's state that hold whatever the order (label, seal, count, opened).
    facts: dict[str, Any] = field(default_factory=dict)

    #: Synced late (``late_sync`` after its station time); worked out once per event.
    late: bool = field(init=False)

    def __post_init__(self) -> None:
        self.late = self.received_at - self.event.station_time > self.tracker.config.late_sync

    def backlog(self, state: ItemState) -> bool:
        """A backlog event: synced late and older than what is known of the item. It is judged but
        does not move custody back in time."""
        return self.late and state.last_time is not None and self.event.station_time < state.last_time

    def make(self, code: str, item: str, en: str, zh: str, severity: str | None = None,
             **details: Any) -> Alert:
        details = {"action": self.event.action.value, **details}
        return Alert(code, severity or CODES[code].severity, item, self.event.id, en, zh, details)

    def add(self, code: str, item: str, en: str, zh: str, severity: str | None = None, **details: Any) -> None:
        self.alerts.append(self.make(code, item, en, zh, severity, **details))

    def unit(self, code: str | None) -> str:
        return self.tracker.geo.name(code) if code else "（未知单位）"

    # --- event-level -------------------------------------------------------------

    def times(self) -> None:
        ev, cfg = self.event, self.tracker.config
        delay = self.received_at - ev.station_time
        if delay > cfg.late_sync:
            self.add("late_sync", ev.item,
                     f"event {ev.id} from station {ev.station} reached the server {minutes(delay)} min after its "
                     f"station time {local(ev.station_time)}: the station was offline",
                     f"设备 {ev.station} 的记录 {ev.id} 在现场时间 {local(ev.station_time)} 之后 {minutes(delay)} "
                     f"分钟才上传，设备曾离线", station=ev.station, delay_seconds=int(delay.total_seconds()))
        if -delay > cfg.clock_ahead:
            self.add("clock_ahead", ev.item,
                     f"station {ev.station} says {local(ev.station_time)}, {minutes(-delay)} min after the server "
                     f"received the event ({local(self.received_at)}): its clock is ahead",
                     f"设备 {ev.station} 的时间 {local(ev.station_time)} 比服务器接收时间 {local(self.received_at)} "
                     f"超前 {minutes(-delay)} 分钟，设备时钟不准", station=ev.station,
                     ahead_seconds=int(-delay.total_seconds()))

    def unknown(self) -> None:
        ev = self.event
        self.add("unknown_item", ev.item, f"item {ev.item} is not in the item table of this exam",
                 f"物品 {ev.item} 不在本次考试的物品清单中", station=ev.station, label=ev.label)

    def label(self, info: ItemInfo, state: ItemState) -> None:
        ev = self.event
        reference = info.label or (state.seen_labels[0] if state.seen_labels else None)
        if reference is not None and ev.label != reference:
            self.add("label_mismatch", ev.item,
                     f"{ev.item} was scanned with label {ev.label[:12]}…, but its label is {reference[:12]}…: "
                     f"a cloned or reprinted label",
                     f"{ev.item} 扫描到的标签 {ev.label[:12]}… 与该物品的标签 {reference[:12]}… 不一致，"
                     f"可能是伪造或重印的标签", seen=ev.label, expected=reference, station=ev.station)
        if ev.label not in state.seen_labels:
            self.facts["seen_labels"] = state.seen_labels + (ev.label,)

    def people(self) -> None:
        ev, cfg = self.event, self.tracker.config
        sides = cfg.two_person.get(ev.action)
        need = cfg.min_people
        handed, received = len(ev.handed_by), len(ev.received_by)
        short: list[tuple[str, str, int]] = []
        if sides is Sides.EACH:
            short = [(s, z, n) for s, z, n in (("handed_by", "交出方", handed), ("received_by", "接收方", received))
                     if n < need]
        elif sides is Sides.RECEIVERS and received < need:
            short = [("received_by", "接收方", received)]
        elif sides is Sides.TOGETHER:
            together = len({p.staff for p in ev.handed_by + ev.received_by})
            if together < need:
                short = [("handed_by+received_by", "经办人", together)]
        if short:
            self.add("single_person", ev.item,
                     f"{ev.action.value} of {ev.item} needs {need} people; "
                     + ", ".join(f"{side} names {n}" for side, _, n in short),
                     f"{ev.item} 的{ACTION_ZH[ev.action]}操作须至少{need}人（双人）；"
                     + "，".join(f"{z}仅{n}人" for _, z, n in short),
                     needed=need, handed_by=[p.staff for p in ev.handed_by],
                     received_by=[p.staff for p in ev.received_by], sides=sides.value if sides else None)

    def seal(self, info: ItemInfo, state: ItemState) -> None:
        ev = self.event
        sealing = ev.action is Action.SEAL
        broken_seen = ev.seal_condition in _BROKEN and (state.seal_expected or sealing)
        if (ev.action is Action.SEAL_DAMAGED or broken_seen) and (not state.seal_broken or sealing):
            what = ev.seal_condition.value if ev.seal_condition in _BROKEN else "damaged"
            reason = f" ({ev.reason})" if ev.reason else ""
            # found by the sender when nobody has received it yet (a depart): it is still the sender's
            where = scan_place(ev.action, ev.from_unit, ev.to_unit, bool(ev.received_by))
            self.add("seal_damaged", ev.item,
                     f"the seal of {ev.item} was found {what} at {where}{reason}",
                     f"{ev.item} 在{self.unit(where)}发现密封"
                     f"{'缺失' if what == 'missing' else '破损'}{('：' + ev.reason) if ev.reason else ''}",
                     condition=what, reason=ev.reason, station=ev.station)
            self.facts["seal_broken"] = True
        if sealing:
            self.facts.update(seal=ev.seal_number or state.seal, seal_expected=True, bad_seal=None,
                              seal_broken=broken_seen)
            return
        number = ev.seal_number
        if (number is not None and state.seal is not None and state.seal_expected and number != state.seal
                and number != state.bad_seal):
            self.add("seal_number_mismatch", ev.item,
                     f"{ev.item} shows seal number {number}, but its seal is {state.seal}",
                     f"{ev.item} 的封条编号为 {number}，应为 {state.seal}", seen=number, expected=state.seal)
            self.facts["bad_seal"] = number

    def opened(self, info: ItemInfo, state: ItemState) -> None:
        """Opening (an item) or unpacking (a box) breaks its seal, whenever it happened."""
        ev = self.event
        if ev.action is Action.OPEN or (ev.action is Action.UNPACK and info.kind is ItemKind.BOX):
            self.facts.update(seal_expected=False, opened_at=state.opened_at or ev.station_time)

    def count(self, info: ItemInfo, state: ItemState, subject: Subject | None) -> None:
        ev = self.event
        expected = state.count
        applies = state.status is not Status.OPENED or ev.action is Action.SEAL
        mismatch = applies and ev.count is not None and expected is not None and ev.count != expected
        already = ev.count is not None and ev.count == expected and expected != info.count
        if not mismatch and not (ev.action is Action.COUNT_MISMATCH and not already):
            return
        # Filled answer cards short after the exam began: absent candidates, not a loss.
        absent = (info.kind is ItemKind.ANSWER_CARD_BUNDLE and subject is not None
                  and ev.station_time >= subject.starts_at
                  and (ev.count is None or ev.count < (expected if expected is not None else info.count)))
        seen = "not given" if ev.count is None else str(ev.count)
        reason = f" ({ev.reason})" if ev.reason else ""
        self.add("count_mismatch", ev.item,
                 f"{ev.item}: count {seen}, expected {expected}{reason}"
                 + (" — answer cards after the exam began, likely absent candidates" if absent else ""),
                 f"{ev.item} 清点数量为 {'未填' if ev.count is None else ev.count}，应为 {expected}"
                 + (f"（{ev.reason}）" if ev.reason else "") + ("，考试开始后的答题卡，可能为缺考" if absent else ""),
                 WARNING if absent else CRITICAL, seen=ev.count, expected=expected, label_count=info.count,
                 reason=ev.reason)
        if ev.count is not None:
            self.facts["count"] = ev.count

    def reports(self, state: ItemState) -> None:
        ev = self.event
        if ev.action is Action.MISSING:
            self.add("reported_missing", ev.item,
                     f"{ev.item} was reported missing ({ev.reason}); last held by {state.holder}, "
                     f"people {', '.join(state.people) or 'unknown'}",
                     f"{ev.item} 报告丢失（{ev.reason}），最后由{self.unit(state.holder)}保管，责任人："
                     f"{'、'.join(state.people) or '不明'}", holder=state.holder, people=list(state.people),
                     reason=ev.reason)
        elif ev.action is Action.FOUND:
            where = ev.to_unit or ev.from_unit
            self.add("found", ev.item, f"{ev.item} was found at {where} ({ev.reason})",
                     f"{ev.item} 已在{self.unit(where)}找回（{ev.reason}）", holder=where, reason=ev.reason)

    # --- item-level --------------------------------------------------------------

    def item(self, info: ItemInfo, state: ItemState, action: Action, scanned: bool,
             subject: Subject | None) -> list[Alert]:
        """The alerts about one item moved by the event (the scanned one, or one packed in it)."""
        ev, out = self.event, []
        backlog = self.backlog(state)
        if state.last_time is not None and ev.station_time < state.last_time:
            out.append(self.make(
                "time_reversal", info.item_id,
                f"{info.item_id}: station time {local(ev.station_time)} is earlier than its last event "
                f"({local(state.last_time)})" + ("; a late backlog, it does not move custody back" if backlog else ""),
                f"{info.item_id} 的现场时间 {local(ev.station_time)} 早于其上一条记录 {local(state.last_time)}"
                + ("；为延迟上传的补录，不改变当前保管状态" if backlog else ""),
                last_time=state.last_time.isoformat(), applied=not backlog))
        if action is Action.OPEN and scanned:
            out += self.opening(info, state, subject, backlog)
        else:
            out += self.places(info)
        if not backlog:
            out += self.sequence(info, state, action, scanned)
        return out

    def places(self, info: ItemInfo) -> list[Alert]:
        """Whether the units the event names may handle the item: one alert per code, naming every unit."""
        ev = self.event
        verdicts: dict[str, list[tuple[str, str, str]]] = {}
        for code in dict.fromkeys(u for u in (ev.from_unit, ev.to_unit) if u is not None):
            verdict = self.tracker.geo.judge_unit(code, info)
            if verdict is not None:
                verdicts.setdefault(verdict[0], []).append((code, verdict[1], verdict[2]))
        return [self.make(alert, info.item_id, f"{info.item_id}: " + "; ".join(v[1] for v in found),
                          f"{info.item_id}：" + "；".join(v[2] for v in found),
                          unit=found[0][0], units=[v[0] for v in found], destination=info.destination)
                for alert, found in verdicts.items()]

    def opening(self, info: ItemInfo, state: ItemState, subject: Subject | None, backlog: bool) -> list[Alert]:
        ev, cfg, out = self.event, self.tracker.config, []
        item, t = info.item_id, ev.station_time
        place = ev.to_unit or ev.from_unit
        if not self.tracker.geo.may_open_at(info, place):
            out.append(self.make("opened_elsewhere", item,
                                 f"{item} was opened at {place}, but it may be opened only at {info.destination}",
                                 f"{item} 在{self.unit(place)}启封，只能在{self.unit(info.destination)}启封",
                                 place=place, destination=info.destination))
        if subject is not None and info.kind is ItemKind.ANSWER_KEY and t < subject.ends_at:
            out.append(self.make("opened_early", item,
                                 f"answer key {item} was opened at {local(t)}, before the {subject.code} session "
                                 f"ended ({local(subject.ends_at)})",
                                 f"答案 {item} 于 {local(t)} 启封，早于{subject.name}考试结束时间 "
                                 f"{local(subject.ends_at)}", opened=t.isoformat(), ends=subject.ends_at.isoformat()))
        elif subject is not None and info.kind in cfg.open_windows:
            earliest = subject.starts_at - cfg.open_windows[info.kind]
            latest = subject.starts_at + cfg.open_late_tolerance
            if t < earliest:
                out.append(self.make(
                    "opened_early", item,
                    f"{item} was opened at {local(t)}, {minutes(subject.starts_at - t)} min before the {subject.code} "
                    f"session starts ({local(subject.starts_at)}); the earliest is {local(earliest)}",
                    f"{item} 于 {local(t)} 启封，距{subject.name}开考（{local(subject.starts_at)}）还有 "
                    f"{minutes(subject.starts_at - t)} 分钟，最早可于 {local(earliest)} 启封",
                    opened=t.isoformat(), earliest=earliest.isoformat(), starts=subject.starts_at.isoformat()))
            elif t > latest:
                out.append(self.make(
                    "opened_late", item,
                    f"{item} was opened at {local(t)}, {minutes(t - subject.starts_at)} min after the {subject.code} "
                    f"session started ({local(subject.starts_at)})",
                    f"{item} 于 {local(t)} 启封，晚于{subject.name}开考时间（{local(subject.starts_at)}）"
                    f"{minutes(t - subject.starts_at)} 分钟", opened=t.isoformat(), latest=latest.isoformat(),
                    starts=subject.starts_at.isoformat()))
        if state.opened_at is not None:
            out.append(self.make("already_opened", item,
                                 f"{item} was opened again; it was first opened at {local(state.opened_at)}",
                                 f"{item} 被再次启封，首次启封时间为 {local(state.opened_at)}",
                                 first_opened=state.opened_at.isoformat()))
        if state.in_box is not None and not backlog:
            out.append(self.make("opened_in_box", item,
                                 f"{item} was opened while its box {state.in_box} was never unpacked: the box was "
                                 f"opened without a record",
                                 f"{item} 启封时其所在试卷箱 {state.in_box} 未登记开箱，试卷箱曾被无记录地打开",
                                 box=state.in_box))
        if info.kind is ItemKind.BACKUP_PAPER and not self.tracker.order_covers(info.subject, place, t):
            out.append(self.make("backup_opened_without_order", item,
                                 f"backup paper {item} was opened at {place} with no backup order for {info.subject} "
                                 f"covering that place",
                                 f"副题 {item} 在{self.unit(place)}启封，"
                                 f"但没有覆盖该地点的{info.subject}科副题启用指令",
                                 place=place, subject=info.subject))
        return out

    def sequence(self, info: ItemInfo, state: ItemState, action: Action, scanned: bool) -> list[Alert]:
        """Whether the action follows from the state: seen_elsewhere, or one out_of_sequence with every reason."""
        ev, geo, out = self.event, self.tracker.geo, []
        item, status, holder = info.item_id, state.status, state.holder
        reasons: list[tuple[str, str]] = []

        def why(en: str, zh: str) -> None:
            reasons.append((en, zh))

        if status is Status.DESTROYED:
            why("it was destroyed before", "该物品此前已销毁")
        elif status is Status.ARCHIVED and action is not Action.DESTROY:
            why("it was archived before", "该物品此前已归档")
        if status is Status.MISSING and action not in REPORTS:
            why("it was reported missing and no found was recorded", "该物品已报告丢失，但未登记找回")
        expected = [u for u in (holder, state.heading, state.sender) if u]
        places = [u for u in (ev.from_unit, ev.to_unit) if u]
        where_broken = False
        if expected and places and action not in REPORTS:
            if geo.grounds(expected).isdisjoint(geo.grounds(places)):
                where_broken = True
                gap = None if state.last_time is None else abs(ev.station_time - state.last_time)
                if gap is not None and gap <= self.tracker.config.seen_elsewhere_window:
                    out.append(self.make(
                        "seen_elsewhere", item,
                        f"{item} was scanned at {' / '.join(places)} {minutes(gap)} min after it was at "
                        f"{state.last_place} (held by {holder}), with no handover between",
                        f"{item} 在{self.unit(state.last_place)}（由{self.unit(holder)}保管）之后仅 {minutes(gap)} "
                        f"分钟又在{'、'.join(self.unit(u) for u in places)}被扫描，其间无交接记录",
                        seen_at=places, holder=holder, last_place=state.last_place,
                        last_time=state.last_time.isoformat() if state.last_time else None))
                else:
                    why(f"custody passed from {holder} to {' / '.join(places)} with no recorded handover",
                        f"保管从{self.unit(holder)}转到{'、'.join(self.unit(u) for u in places)}，无交接记录")
        giver = ev.from_unit
        if action in HANDOVERS and giver and not where_broken and giver not in expected:
            why(f"handed over by {giver}, but it is held by {holder}",
                f"由{self.unit(giver)}交出，但该物品由{self.unit(holder)}保管")
        self._action_order(info, state, action, scanned, why)
        if reasons:
            out.append(self.make("out_of_sequence", item,
                                 f"{item}: {ev.action.value} out of sequence: " + "; ".join(r[0] for r in reasons),
                                 f"{item} 的{ACTION_ZH[ev.action]}操作顺序异常：" + "；".join(r[1] for r in reasons),
                                 status=status.value, holder=holder, reasons=[r[0] for r in reasons]))
        return out

    def _action_order(self, info: ItemInfo, state: ItemState, action: Action, scanned: bool, why: Any) -> None:
        ev, status, holder, to = self.event, state.status, state.holder, self.event.to_unit
        if action in (Action.RECEIVE, Action.RECEIVE_FOR_GRADING):
            if status in PENDING:
                if state.heading and to and to != state.heading:
                    why(f"it was sent to {state.heading} but received at {to}",
                        f"发往{self.unit(state.heading)}，却在{self.unit(to)}接收")
            elif to == holder and state.last_action != Action.ARRIVE.value and status is not Status.MISSING:
                why(f"it is already held by {to}", f"该物品已由{self.unit(to)}保管")
        elif action is Action.ARRIVE:
            if status is not Status.IN_TRANSIT:
                why("it arrived with no depart", "无出发记录即到达")
            elif state.heading and to and to != state.heading:
                why(f"it departed for {state.heading} but arrived at {to}",
                    f"发往{self.unit(state.heading)}，却到达{self.unit(to)}")
        elif action in (Action.DEPART, Action.DISTRIBUTE) and status is Status.IN_TRANSIT:
            why("it is in transit and was not received", "该物品在运送途中，尚未接收")
        elif action is Action.STORE:
            if status is Status.STORED and to == holder:
                why(f"it is already stored in {to}", f"该物品已存放于{self.unit(to)}")
            if to and self.tracker.geo.kind(to) not in (UnitKind.SECURE_ROOM, None):
                why(f"{to} is not a secure room", f"{self.unit(to)}不是保密室")
        elif action is Action.TAKE_OUT and status is not Status.STORED:
            why("it was taken out but is not stored", "该物品未存放在保密室，却登记取出")
        elif action is Action.SEAL and status is not Status.OPENED:
            why("it was sealed but never opened", "该物品未启封即封装")
        elif action is Action.GRADE and status is not Status.GRADING:
            why("it was graded before it was received for grading", "未登记评卷接收即评阅")
        elif action is Action.FOUND and status is not Status.MISSING:
            why("it was found but never reported missing", "该物品未报告丢失，却登记找回")
        elif action is Action.UNPACK and scanned:
            if info.kind is ItemKind.BOX and status is Status.OPENED:
                why("the box was unpacked before", "该试卷箱此前已开箱")
            elif info.kind is not ItemKind.BOX and state.in_box is None:
                why("it is not packed in a box", "该物品不在试卷箱内")
        elif action is Action.PACK and scanned:
            box = self.tracker.items.get(ev.box or "")
            if box is None or box.kind is not ItemKind.BOX or box.item_id == info.item_id:
                why(f"{ev.box} is not a known box", f"{ev.box} 不是已登记的试卷箱")
            elif state.in_box is not None:
                why(f"it is already packed in {state.in_box}", f"该物品已装入试卷箱 {state.in_box}")
        if info.kind is ItemKind.ANSWER_CARD_BUNDLE and status is Status.OPENED and action in SEALED_FOR:
            why("the answer cards were opened and not sealed again", "答题卡启封后未封装即交接")
        if (scanned and state.in_box is not None and action not in REPORTS
                and action not in (Action.PACK, Action.UNPACK, Action.OPEN)):
            why(f"it was scanned on its own while packed in box {state.in_box}, with no unpack recorded",
                f"该物品装在试卷箱 {state.in_box} 中，未登记开箱却被单独扫描")
