"""Custody rules (分级负责): a deterministic state machine over handover events.

:class:`Tracker` holds every item's :class:`ItemState` and advances it with
``record(event, received_at) -> Outcome``, in log order. It only judges: the
caller has logged the event whatever it breaks; the :class:`Alert` list says
what is wrong, ``Outcome.changed`` the new state of every item the event
changed. It reads no clock and does no I/O; the result depends only on the
plan, the item table, the config, the states it started from, the backup
orders and the sequence of ``record`` calls.

What callers may rely on
------------------------
- **Persisting.** The tracker's whole memory is the item states and the
  backup orders. Store ``Outcome.changed`` (``ItemState.to_json``) after each
  batch, re-add the orders, and ``Tracker(plan, items, states=...)`` judges the
  next event exactly as the tracker that ran straight through. An item with no
  stored state is in its initial state: ``issued``, held by the plan's printer,
  packed in its label's ``parent_box``. What is lost if the process dies
  mid-batch: only states not yet stored, which re-recording the batch rebuilds.
- **Alert codes are stable** (:data:`CODES` lists them with severity and
  meaning); messages are English and Chinese and may change.
- **Boxes.** Items are in their label's box from issue on. An event on a box
  whose action moves custody (receive, store, take_out, depart, arrive,
  distribute, return, receive_for_grading, grade, archive, destroy, missing,
  found, issue) moves everything still packed in it (boxes in boxes too);
  each of those items gets the item-level checks, but an alert the box already
  raised with the same code is not repeated for contents that moved in lockstep
  with it (the box's alert lists them in ``details["contents"]``). Event-level
  alerts (time, people, the scanned label, seal and count) are raised once, for
  the box. ``unpack`` (or ``open``) on a box opens it: its contents become
  individually tracked. ``unpack`` on an item takes just it out; ``pack`` with
  ``box`` puts it in. An item scanned on its own while still packed is taken
  out of its box, with an ``out_of_sequence`` (``opened_in_box`` if opened).
- **Backlog events.** An event that synced late (``late_sync``) *and* is older
  than the item's last event is judged (``time_reversal``, place, opening,
  identity) but does not move custody back in time: holder, status and the
  ``last_*`` fields stay; its facts (labels seen, seal, count, opened) are kept.
  Small clock differences between stations (not late) apply normally, with a
  ``time_reversal`` warning.

Holder after each action: receive, arrive, found → ``to_unit`` (held);
store → the secure room (stored); take_out → ``to_unit`` (held);
receive_for_grading → the grading centre (grading); depart → stays with the
sender, ``in_transit``, people = escorts (handed_by); distribute → ``to_unit``
(distributed); return → ``to_unit`` if anyone signed for it there, else the
sender (returned); open → where it was opened (opened, people = received_by);
seal → where it was sealed (sealed); grade / archive / destroy → ``to_unit``
(graded / archived / destroyed); missing → the last holder still answers
(missing). While distributed, returned, in transit or issued, a receive at the
unit it was sent to is expected.
"""

from custody.rules.codes import CODES, AlertCode
from custody.rules.model import (
    DEFAULT_OPEN_WINDOWS,
    DEFAULT_TWO_PERSON,
    PENDING,
    Alert,
    BackupOrder,
    ItemInfo,
    ItemState,
    Outcome,
    RuleConfig,
    Sides,
    Status,
)
from custody.rules.places import Geography
from custody.rules.tracker import PROPAGATING, Tracker, alert_codes

__all__ = [
    "CODES", "AlertCode", "DEFAULT_OPEN_WINDOWS", "DEFAULT_TWO_PERSON", "PENDING", "PROPAGATING", "Alert",
    "BackupOrder", "Geography", "ItemInfo", "ItemState", "Outcome", "RuleConfig", "Sides", "Status", "Tracker",
    "alert_codes",
]
