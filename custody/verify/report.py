"""The verification report: JSON (signed by the log key) and HTML, Chinese first with English.

The signed form is the report object with a ``signature`` member::

    "signature": {"alg": "Ed25519", "kid": <hex, INTERFACES §1>, "key": <signed-note verifier key>,
                  "sig": <base64 Ed25519 over the RFC 8785 bytes of the report without "signature">}

so anyone holding the log's verifier key (``custody log-key``) can check a
report offline with :func:`verify_report`.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Callable, Sequence
from typing import Any

from custody import ed25519
from custody.errors import LogError
from custody.log.jcs import canonical_json
from custody.log.note import NoteVerifier
from custody.verify.findings import CODES, Finding

REPORT_FORMAT = "custody-verification/v1"


class ReportSignatureError(LogError):
    """A verification report's signature is missing or does not verify under the log key."""


def unsigned_bytes(report: dict[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in report.items() if k != "signature"})


def report_digest(report: dict[str, Any]) -> str:
    """SHA-256 (hex) of the report's signed bytes: how later reports and states refer to it."""
    return hashlib.sha256(unsigned_bytes(report)).hexdigest()


def sign_report(report: dict[str, Any], sign: Callable[[bytes], bytes], verifier: NoteVerifier) -> dict[str, Any]:
    """The report with its ``signature`` member, signed by ``sign`` (the log key)."""
    sig = sign(unsigned_bytes(report))
    kid = hashlib.sha256(verifier.public_raw).digest()[:8].hex()
    return {**report, "signature": {"alg": "Ed25519", "kid": kid, "key": verifier.key_text(),
                                    "sig": base64.b64encode(sig).decode("ascii")}}


def verify_report(report: dict[str, Any], verifiers: Sequence[NoteVerifier]) -> NoteVerifier:
    """Check a signed report against the trusted log keys; returns the key, raises ``ReportSignatureError``."""
    signature = report.get("signature")
    if not isinstance(signature, dict) or signature.get("alg") != "Ed25519":
        raise ReportSignatureError("the report is not signed (no Ed25519 signature member)")
    try:
        sig = base64.b64decode(signature.get("sig", ""), validate=True)
    except ValueError:
        raise ReportSignatureError("the report's signature is not base64") from None
    message = unsigned_bytes(report)
    for v in verifiers:
        if ed25519.verifies(v.public_raw, sig, message):
            return v
    raise ReportSignatureError(f"the report's signature does not verify under the log key(s) "
                               f"{', '.join(v.key_text() for v in verifiers) or '(none)'}")


def build_report(*, origin: str, mode: str, started_at: str, finished_at: str, log_size: int, verified_from: int,
                 verified_to: int, checkpoint: str | None, findings: Sequence[Finding], finding_counts: dict[str, int],
                 checks: Sequence[dict[str, Any]], stats: dict[str, Any], previous: str | None,
                 state_digest: str | None) -> dict[str, Any]:
    """The report object (unsigned). ``ok`` is true only with no finding at all and at least one check."""
    ok = not finding_counts and bool(checks)
    return {
        "format": REPORT_FORMAT, "origin": origin, "mode": mode, "ok": ok,
        "started_at": started_at, "finished_at": finished_at,
        "log_size": log_size, "verified_from": verified_from, "verified_to": verified_to,
        "checkpoint": checkpoint, "checks": list(checks), "stats": stats,
        "finding_counts": dict(sorted(finding_counts.items())), "findings": [f.as_json() for f in findings],
        "previous_report": previous, "state_digest": state_digest,
        "summary_zh": ("核验通过：日志完整，全部检查均成立。" if ok else
                       f"核验失败：发现 {sum(finding_counts.values())} 处问题。"),
        "summary": ("Verified: the log holds; every check passed." if ok else
                    f"FAILED: {sum(finding_counts.values())} problem(s) found."),
    }


def _mode_detail(report: dict[str, Any]) -> str:
    """`` (why the run was full or where it started)``, if the report says."""
    detail, mode = report.get("stats", {}).get("mode_detail"), report.get("mode")
    if not isinstance(detail, str) or not detail:
        return ""
    if detail.startswith(f"{mode} (") and detail.endswith(")"):  # "full (state untrusted)"
        detail = detail[len(f"{mode} ("):-1]
    elif detail.startswith(f"{mode}: "):  # "full: the last run found problems"
        detail = detail[len(f"{mode}: "):]
    elif detail.startswith(f"{mode} "):  # "incremental from size 240"
        detail = detail[len(f"{mode} "):]
    return f" ({detail})"


def render_text(report: dict[str, Any], limit: int = 50) -> str:
    """A short plain-text summary for the terminal."""
    lines = [f"{report['summary_zh']}  {report['summary']}",
             f"mode {report['mode']}{_mode_detail(report)}; leaves {report['verified_from']}.."
             f"{report['verified_to']} of {report['log_size']}; "
             f"{report['stats'].get('events_per_second', 0):,.0f} leaves/s"]
    for check in report["checks"]:
        lines.append(f"  [{'ok' if check['ok'] else 'FAIL'}] {check['name_zh']} / {check['name']}: {check['detail']}")
    for f in report["findings"][:limit]:
        lines.append(f"  ✗ {f['code']} @ {f['where']}: {f['message']}")
        if f.get("message_zh"):
            lines.append(f"    {f['message_zh']}")
    more = sum(report["finding_counts"].values()) - min(limit, len(report["findings"]))
    if more > 0:
        lines.append(f"  ... and {more} more finding(s)")
    return "\n".join(lines) + "\n"


def render_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page (no scripts, no outside resources), Chinese first with English."""
    e = html.escape
    ok = report["ok"]
    rows = []
    for check in report["checks"]:
        mark = "✓" if check["ok"] else "✗"
        rows.append(f"<tr class=\"{'ok' if check['ok'] else 'bad'}\"><td>{mark}</td><td>{e(check['name_zh'])}<br>"
                    f"<small>{e(check['name'])}</small></td><td>{e(str(check['detail']))}</td></tr>")
    found = []
    for f in report["findings"]:
        zh_title = CODES.get(f["code"], (f["code"], f["code"], ""))[1]
        found.append(
            f"<tr><td><code>{e(f['code'])}</code><br>{e(zh_title)}<br><small>{e(f['title'])}</small></td>"
            f"<td>{e(f['where'])}</td><td>{e(f.get('message_zh', ''))}<br><small>{e(f['message'])}</small></td>"
            f"<td><small>{e(str(f.get('expected', '')))}</small></td><td><small>{e(str(f.get('found', '')))}"
            "</small></td></tr>")
    sig = report.get("signature") or {}
    findings_html = (
        "<h2>发现的问题 <small>Findings</small></h2><table><tr><th>类型 Kind</th><th>位置 Where</th>"
        "<th>说明 What</th><th>应为 Expected</th><th>实为 Found</th></tr>" + "".join(found) + "</table>"
    ) if found else "<p>没有发现问题。<small>No findings.</small></p>"
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>日志核验报告 Verification report — {e(report['origin'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse;width:100%}}
td,th{{border:1px solid #ccc;padding:.3em;vertical-align:top;text-align:left}}tr.bad{{background:#fdd}}
.verdict{{font-size:1.4em;padding:.5em;color:#fff;background:{'#2a7' if ok else '#c22'}}}small{{color:#555}}
code{{word-break:break-all}}</style></head><body>
<h1>日志核验报告 <small>Verification report</small></h1>
<p class="verdict">{e(report['summary_zh'])}<br><small style="color:#fff">{e(report['summary'])}</small></p>
<table>
<tr><th>日志 Log</th><td>{e(report['origin'])}</td></tr>
<tr><th>方式 Mode</th><td>{'全量核验 full' if report['mode'] == 'full' else '增量核验 incremental'}\
<small>{e(_mode_detail(report))}</small></td></tr>
<tr><th>时间 Time</th><td>{e(report['started_at'])} — {e(report['finished_at'])}</td></tr>
<tr><th>核验范围 Leaves checked</th><td>{report['verified_from']} … {report['verified_to']}
 / {report['log_size']}</td></tr>
<tr><th>速度 Speed</th><td>{report['stats'].get('events_per_second', 0):,.0f} 条/秒 leaves/s</td></tr>
<tr><th>签名 Signed by</th><td><code>{e(str(sig.get('key', '未签名 unsigned')))}</code></td></tr>
</table>
<h2>检查项 <small>Checks</small></h2><table>{''.join(rows)}</table>
{findings_html}
<h2>已核验的检查点 <small>Verified checkpoint</small></h2><pre>{e(report.get('checkpoint') or '—')}</pre>
</body></html>
"""
