"""Every message the station shows, in Chinese and English, by a stable reason code.

Codes are stable (they appear in JSON lines and refusal evidence); wording may change.
``{placeholders}`` are filled from the verdict's details.
"""

from __future__ import annotations

from typing import Any

#: reason code -> (colour, Chinese, English)
REASONS: dict[str, tuple[str, str, str]] = {
    # green
    "expected": ("green", "在本次交接清单上", "on this handover's list"),
    "in_expected_box": ("green", "属于清单上的箱子 {box}", "packed in box {box}, which is on the list"),
    "badge_handing": ("green", "交出方：{name}（{staff}）", "handing over: {name} ({staff})"),
    "badge_receiving": ("green", "接收方：{name}（{staff}）", "receiving: {name} ({staff})"),
    "badge_both": ("green", "经办人：{name}（{staff}）", "officer: {name} ({staff})"),
    "manifest": ("green", "已载入交接单 {manifest}：{n} 件", "handover manifest {manifest} loaded: {n} item(s)"),
    # amber
    "unexpected": ("amber", "不在本次交接清单上（应送 {destination}）",
                   "not on this handover's list (bound for {destination})"),
    "unexpected_no_list": ("amber", "尚无交接清单：请联网同步或扫描交接单",
                           "no expected list yet: sync or scan the handover manifest"),
    "badge_other_unit": ("amber", "工作证单位 {unit} 不是本次交接的任何一方",
                         "badge of unit {unit}, not a party to this handover"),
    "badge_extra": ("amber", "{side}已有 {n} 人，多余的工作证不登记", "{side_en} already has {n} people; not recorded"),
    "manifest_other": ("amber", "交接单 {manifest} 属于另一次交接（{from_unit}→{to_unit}）",
                       "manifest {manifest} is for another handover ({from_unit}→{to_unit})"),
    # red: the label itself
    "malformed": ("red", "标签损坏或格式错误", "label damaged or malformed"),
    "unknown_key": ("red", "签发密钥未登记：伪造标签", "signing key not registered: forged label"),
    "bad_signature": ("red", "签名无效：伪造或被篡改的标签", "signature does not verify: forged or altered label"),
    "key_revoked": ("red", "签发密钥已吊销", "the signing key was revoked"),
    "key_not_valid": ("red", "签发时密钥无效", "the signing key was not valid when the label was signed"),
    "no_bundle": ("red", "没有密钥包，无法验证：请先联网同步", "no key bundle to verify with: sync first"),
    "manifest_invalid": ("red", "交接单无效：{detail}", "handover manifest refused: {detail}"),
    # red: the item's state
    "already_handed_over": ("red", "已交接过（{when}，{where}）：疑似复制标签",
                            "already handed over ({when}, {where}): a copied label?"),
    "already_here": ("red", "已在本单位（{holder}）：疑似复制标签", "already held here ({holder}): a copied label?"),
    "already_opened": ("red", "已启封（{holder}）：不能再次启封或交接，请核查",
                       "already opened ({holder}): it cannot be opened or handed over again; check it"),
    "label_mismatch": ("red", "标签与清单登记的不符：可能被替换", "label differs from the one issued: replaced?"),
    "copy_in_view": ("red", "同一标签同时出现两次：疑似复印件", "the same label twice in view: a photocopy?"),
    # grey
    "not_ours": ("grey", "不是保密标签（其他二维码）", "not a custody label (another QR code)"),
    "recorded_before": ("grey", "上一次交接已登记：请移出画面", "recorded by the previous handover: move it away"),
}

STATUS: dict[str, tuple[str, str]] = {
    "hold_still": ("请保持稳定", "Hold still"),
    "confirmed": ("已确认并安全保存，共 {n} 条记录", "Confirmed and stored safely: {n} record(s)"),
    "ready": ("清点完毕：按 Enter 确认", "Count complete: press Enter to confirm"),
    "not_complete": ("还不能确认：{problems}", "Cannot confirm yet: {problems}"),
    "cancelled": ("已取消本次交接，未登记任何记录", "Handover cancelled; nothing recorded"),
    "source_error": ("画面来源出错：{detail}", "Picture source failed: {detail}"),
    "source_lost": ("摄像头断开：{detail}；交接继续，请重新连接", "Camera lost: {detail}; the handover goes on"),
    "bundle_stale": ("密钥包已过期 {hours} 小时：请联网同步", "Key bundle is {hours} h old: sync when online"),
    "bundle_missing": ("没有密钥包：请联网同步", "No key bundle: sync first"),
    "clock_behind": ("本机时钟比服务器慢约 {hours} 小时（密钥包签发于本机时间之后）：请校准时钟",
                     "This station's clock is about {hours} h behind the server's (the key bundle was issued after "
                     "its time): set the clock"),
    "unsent": ("待发送 {n} 条", "{n} unsent"),
    "all_sent": ("已全部发送", "All sent"),
    "seal_damaged": ("已登记封条破损：{item}", "Seal damage recorded: {item}"),
    "missing_marked": ("已登记缺少 {n} 件：{reason}", "{n} missing item(s) recorded: {reason}"),
    "accept_unexpected": ("多出的物品将一并登记接收", "Unexpected items will be recorded too"),
    "sync_failed": ("暂时无法联网：{detail}", "Offline: {detail}"),
    "sync_untrusted": ("服务器的答复无法验证，记录仍保存在本机待发送：{detail}",
                       "The server's answer does not verify; the records stay here, unsent: {detail}"),
    "server_refused": ("服务器拒收 {n} 条记录（拒收已作为证据登记，记录不会重发）：{detail}",
                       "The server refused {n} record(s) (it logged the refusal as evidence; they are not sent "
                       "again): {detail}"),
    "id_conflict": ("{n} 条记录的编号与日志中另一条记录相同：本机可能从旧备份恢复，请联系管理员",
                    "{n} record(s) share their id with another record in the log: was this station restored from "
                    "an old backup? Call the administrator"),
    "server_error": ("服务器暂时无法处理，记录保存在本机，稍后自动重发：{detail}",
                     "The server could not take them now; the records stay here and are sent again later: {detail}"),
}

PROBLEMS: dict[str, tuple[str, str]] = {
    "people": ("{side}需要 {need} 人，已扫描 {have} 人", "{side_en} needs {need} people, {have} scanned"),
    "missing": ("缺少 {n} 件未登记原因（按 M 登记）", "{n} missing item(s) without a reason (press M)"),
    "nothing": ("没有可登记的物品", "nothing to record"),
    "no_label": ("{item} 没有标签摘要，无法登记缺少", "{item} has no label digest; cannot record it missing"),
}

SIDES = {"handed": ("交出方", "handing side"), "received": ("接收方", "receiving side"),
         "together": ("经办人", "officers")}


class _Default(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def reason_message(code: str, lang: str = "zh", **details: Any) -> str:
    colour, zh, en = REASONS[code]
    return (zh if lang == "zh" else en).format_map(_Default(details))


def status_message(code: str, lang: str = "zh", **details: Any) -> str:
    zh, en = STATUS[code]
    return (zh if lang == "zh" else en).format_map(_Default(details))


def problem_message(code: str, lang: str = "zh", **details: Any) -> str:
    zh, en = PROBLEMS[code]
    return (zh if lang == "zh" else en).format_map(_Default(details))


def colour_of(code: str) -> str:
    return REASONS[code][0]
