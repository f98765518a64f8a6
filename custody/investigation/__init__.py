"""Leak investigation: custody windows, gaps, anomalies, the tier summary and the backup-paper scope.

Pure: the storage layer reads the log and passes in scans, items, stored
alerts and a prover for inclusion proofs; :func:`build_report` does the rest.

- :mod:`~custody.investigation.model`: inputs (:class:`Scan`, :class:`ItemRecord`,
  :class:`StoredAlert`) and results (:class:`Window`, :class:`Gap`, :class:`Anomaly`,
  :class:`ItemCustody`);
- :mod:`~custody.investigation.trace`: one item's custody from its scans and its box's;
- :mod:`~custody.investigation.ranking`: the tier summary (分级负责), scored and ranked;
- :mod:`~custody.investigation.scope`: scenario 2/3 areas and the backup papers (副题);
- :mod:`~custody.investigation.report`: :func:`build_report`, :class:`Report` and its JSON.
"""

from custody.investigation.model import (
    CONTENT_KINDS,
    Anomaly,
    Gap,
    InvestigationConfig,
    ItemCustody,
    ItemRecord,
    Revocation,
    Scan,
    StoredAlert,
    Window,
)
from custody.investigation.ranking import Reason, UnitSummary, score_unit, tier_summary
from custody.investigation.report import (
    REPORT_FORMAT,
    Report,
    build_report,
    leaf_hash_of,
    parse_time,
    scan_from_leaf,
)
from custody.investigation.scope import Area, BackupStock, Scope, backup_paper_scope
from custody.investigation.territory import TIER_NAMES, TIER_ORDER, Territory
from custody.investigation.trace import trace_item, trace_items

__all__ = [
    "CONTENT_KINDS", "REPORT_FORMAT", "TIER_NAMES", "TIER_ORDER", "Anomaly", "Area", "BackupStock",
    "Gap", "InvestigationConfig", "ItemCustody", "ItemRecord", "Reason", "Report", "Revocation", "Scan", "Scope",
    "StoredAlert",
    "Territory", "UnitSummary", "Window", "backup_paper_scope", "build_report", "leaf_hash_of", "parse_time",
    "scan_from_leaf", "score_unit", "tier_summary", "trace_item", "trace_items",
]
