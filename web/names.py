"""Display names of the domain's stable codes (actions, statuses, kinds, tiers), translatable."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

ACTIONS = {
    "issue": _l("issued by the printer"), "pack": _l("packed"), "unpack": _l("unpacked"),
    "receive": _l("received"), "store": _l("stored in the secure room"), "take_out": _l("taken out of the secure room"),
    "depart": _l("departed (escorted)"), "arrive": _l("arrived"), "distribute": _l("distributed"),
    "open": _l("opened"), "seal": _l("sealed"), "return": _l("returned"),
    "receive_for_grading": _l("received for grading"), "grade": _l("graded"), "archive": _l("archived"),
    "destroy": _l("destroyed"), "seal_damaged": _l("seal found damaged"), "count_mismatch": _l("count mismatch"),
    "missing": _l("reported missing"), "found": _l("found again"),
}

STATUSES = {
    "issued": _l("at the printer"), "in_transit": _l("in transit"), "stored": _l("in a secure room"),
    "held": _l("held"), "distributed": _l("distributed"), "opened": _l("opened"), "sealed": _l("sealed"),
    "returned": _l("returned"), "grading": _l("at grading"), "graded": _l("graded"), "archived": _l("archived"),
    "destroyed": _l("destroyed"), "missing": _l("missing"),
}
STAGE_ORDER = list(STATUSES)

KINDS = {
    "paper_bundle": _l("paper bundle"), "answer_card_bundle": _l("answer-card bundle"),
    "listening_disc": _l("listening disc"), "answer_key": _l("answer key"), "backup_paper": _l("backup paper"),
    "box": _l("box"), "badge": _l("staff badge"),
}

TIERS = {
    "printer": _l("printer"), "city": _l("city institute"), "county": _l("county office"),
    "site": _l("exam site"), "room": _l("exam room"), "grading": _l("grading centre"),
    "in_transit": _l("on the road"), "unknown": _l("unknown"),
}
TIER_ORDER = ["printer", "city", "county", "site", "room", "grading", "in_transit"]

UNIT_KINDS = {
    "printer": _l("printer"), "city": _l("city institute"), "county": _l("county office"), "zone": _l("exam zone"),
    "site": _l("exam site"), "room": _l("exam room"), "secure_room": _l("secure room"),
    "grading": _l("grading centre"),
}

SEALS = {"intact": _l("intact"), "damaged": _l("damaged"), "missing": _l("missing")}

SEVERITIES = {"critical": _l("critical"), "warning": _l("warning"), "info": _l("info")}

ROLES = {"admin": _l("institute administrator"), "officer": _l("unit officer"), "investigator": _l("investigator"),
         "auditor": _l("auditor"), "station": _l("station")}

KEY_ROLES = {"label_issuer": _l("label signing"), "badge_issuer": _l("badge signing"), "log_signer": _l("log signing"),
             "station": _l("station"), "witness": _l("witness")}

#: The audit trail's actions (web.audit.ACTIONS, whose codes stay the filter's values).
AUDIT_ACTIONS = {
    "login": _l("logged in"), "logout": _l("logged out"), "login_failed": _l("failed login"),
    "view_item": _l("viewed an item"), "view_investigation": _l("viewed an investigation"),
    "view_verification": _l("viewed a verification report"), "download_labels": _l("downloaded labels"),
    "issue_labels": _l("issued labels"), "register_station": _l("registered a station"),
    "add_person": _l("added a person"), "issue_badges": _l("issued badges"), "add_unit": _l("added a unit"),
    "rotate_key": _l("rotated a key"), "revoke_key": _l("revoked a key"), "add_account": _l("added an account"),
    "disable_account": _l("disabled an account"), "enable_account": _l("enabled an account"),
    "scan_refusal": _l("refused scan reported"),
}

LEAF_TYPES = {"handover": _l("handover"), "label": _l("label issued"), "refusal": _l("refused submission"),
              "key": _l("key registered"), "retirement": _l("key retired"), "revocation": _l("key revoked"),
              "backup_order": _l("backup paper order")}


def name_of(table: dict[str, object], code: str | None) -> str:
    if code is None:
        return ""
    return str(table.get(code, code))
