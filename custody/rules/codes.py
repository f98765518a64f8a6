"""Every alert code the custody rules raise, with its usual severity and meaning.

Codes are stable: they are stored with each alert and filtered on by the UI.
``count_mismatch`` is the one code whose severity depends on the case (a
``warning`` for filled answer cards short after the exam began, absent
candidates; ``critical`` otherwise); the severity here is its worst.
"""

from __future__ import annotations

from dataclasses import dataclass

CRITICAL, WARNING, INFO = "critical", "warning", "info"


@dataclass(frozen=True)
class AlertCode:
    code: str
    severity: str
    title: str
    title_zh: str
    meaning: str


_TABLE = [
    ("unknown_item", CRITICAL, "Unknown item", "未知物品",
     "the scanned item is not in the item table of the exam"),
    ("label_mismatch", CRITICAL, "Label does not match", "标签不一致",
     "the item was scanned with a label other than its issued (or first seen) one: a cloned or reprinted label"),
    ("seen_elsewhere", CRITICAL, "Seen in two places", "同一物品异地出现",
     "the item was scanned at a place unrelated to where it is held, shortly after, with no handover between"),
    ("outside_jurisdiction", CRITICAL, "Outside jurisdiction", "超出管辖范围",
     "a county office, site or room handled an item destined outside its own ground (分级负责，属地管理)"),
    ("answer_key_off_route", CRITICAL, "Answer key off its route", "答案偏离规定路线",
     "an answer key was at a unit other than the printer, the city institute, its secure room or grading"),
    ("unexpected_place", CRITICAL, "Unexpected place", "不在规定路线",
     "the item was at a unit outside its destination path (or not in the plan at all)"),
    ("opened_elsewhere", CRITICAL, "Opened in the wrong place", "在非指定地点启封",
     "opened outside its destination room (a listening disc: outside its site)"),
    ("opened_early", CRITICAL, "Opened early", "提前启封",
     "opened before its window before the session start (an answer key: before the session ended)"),
    ("opened_late", WARNING, "Opened late", "延迟启封",
     "opened after the session start plus the late tolerance"),
    ("already_opened", CRITICAL, "Opened twice", "重复启封",
     "an open of an item that was opened before"),
    ("opened_in_box", CRITICAL, "Opened inside a closed box", "未开箱即启封",
     "an item opened while its box had not been unpacked: the box was opened unrecorded"),
    ("backup_opened_without_order", CRITICAL, "Backup paper opened without an order", "无启用指令启封副题",
     "a backup paper opened with no backup order for its subject covering the place, issued before"),
    ("single_person", CRITICAL, "Fewer than two people", "未落实双人",
     "an action that needs two people (双人) on a side had fewer"),
    ("seal_damaged", CRITICAL, "Seal damaged", "密封破损",
     "a scan found the seal damaged or missing, or a seal_damaged exception was reported"),
    ("seal_number_mismatch", CRITICAL, "Seal number differs", "封条编号不符",
     "the seal number seen is not the one on the label (or applied at sealing)"),
    ("count_mismatch", CRITICAL, "Count differs", "数量不符",
     "the count seen differs from the count expected, or a count_mismatch exception was reported"),
    ("time_reversal", WARNING, "Earlier than the last event", "时间倒序",
     "the station time is earlier than the item's last event"),
    ("late_sync", WARNING, "Synced late", "延迟上传",
     "the event reached the server long after its station time: the station was offline"),
    ("clock_ahead", WARNING, "Station clock ahead", "设备时钟超前",
     "the station time is ahead of the server's receipt time"),
    ("out_of_sequence", WARNING, "Out of sequence", "交接顺序异常",
     "the action does not follow from the item's state (receive twice, arrive without depart, ...)"),
    ("reported_missing", CRITICAL, "Reported missing", "报告丢失",
     "a missing exception was reported; the last holder still answers for the item"),
    ("found", INFO, "Found", "已找回",
     "a found exception: the item is held again by the unit that found it"),
]

#: code → :class:`AlertCode`, in the order the rules are documented.
CODES: dict[str, AlertCode] = {row[0]: AlertCode(*row) for row in _TABLE}
