"""The station: its home, caches, outbox and server link, and the sessions it runs.

:class:`Station` is what the window, the headless runner and ``custody
station`` commands use. It never loses a confirmed event: :meth:`confirm`
returns only after the events are signed and on disk (see
:mod:`scanners.station.outbox`); :meth:`sync` fetches what the station needs
to work offline and sends the outbox, and never raises for a network or
server failure (the report says what failed; the next sync retries).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from custody.errors import CustodyError
from custody.events import Action, format_time
from custody.labels import ItemKind, Signer
from custody.log.note import parse_verifier_key
from scanners.station.caches import HELD_ACTION, BundleCache, ExpectedCache, KeyBundle
from scanners.station.client import HttpTransport, StationClient, Transport, TransportError
from scanners.station.errors import BundleError, ReceiptError, StationError
from scanners.station.home import StationConfig, StationHome
from scanners.station.manifest import ManifestItem, make_manifests
from scanners.station.outbox import Backoff, Outbox
from scanners.station.sender import Sender, SendReport, verify_refusal_receipt
from scanners.station.session import OUTGOING, HandoverSession
from scanners.station.verdict import Knowledge


class SessionIncomplete(CustodyError):
    """The session cannot be confirmed yet; ``problems`` says why (people, missing items, nothing to record)."""

    exit_code = 3

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("the handover cannot be confirmed yet: " + "; ".join(m for _, m in problems))


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SyncReport:
    bundle: str | None = None  # "updated", or None when it could not be fetched
    expected: dict[str, int] = field(default_factory=dict)
    send: SendReport | None = None
    refusals_reported: int = 0
    refusals_note: str | None = None
    errors: list[str] = field(default_factory=list)
    bundle_refused: bool = False  # the server's key bundle did not verify against the pinned log key
    bad_refusal_receipts: int = 0  # refusal reports answered with a receipt that does not prove them
    log_key_followed: str | None = None  # the log key pinned now, followed on from the old one (a rotation)

    @property
    def integrity_failure(self) -> bool:
        """Something the server sent did not verify, or it refused an event: exit code 1, not 3."""
        send = self.send
        return self.bundle_refused or bool(self.bad_refusal_receipts) or (
            send is not None and bool(send.refused or send.conflict or send.bad_receipts))

    @property
    def online(self) -> bool:
        return not any(e.startswith("offline") for e in self.errors)

    def as_json(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "log_key_followed": self.log_key_followed,
                "expected": self.expected, "send": self.send.as_json() if self.send else None,
                "refusals_reported": self.refusals_reported, "refusals_note": self.refusals_note,
                "bundle_refused": self.bundle_refused, "bad_refusal_receipts": self.bad_refusal_receipts,
                "errors": self.errors}


def _named_log_key(document: Any) -> str | None:
    """The log key a fetched key bundle says signed it (not verified: only to notice a rotation)."""
    body = document.get("bundle") if isinstance(document, dict) else None
    named = body.get("log_key") if isinstance(body, dict) else None
    return named if isinstance(named, str) else None


class Station:
    def __init__(self, home: StationHome, *, secret: bytes | None = None, transport: Transport | None = None,
                 clock: Callable[[], datetime] = utc_now, backoff: Backoff | None = None):
        self.home = home
        self.config: StationConfig = home.config()
        self.clock = clock
        self._secret = secret
        self._transport = transport
        self._signer: Signer | None = None
        self.outbox = Outbox(home.outbox_path, self.config.code)
        self.bundles = BundleCache(home.bundle_path, self.config.log_key, self.config.previous_log_keys)
        self.expected_cache = ExpectedCache(home.expected_dir)
        self.backoff = backoff or Backoff()

    def close(self) -> None:
        self.outbox.close()
        if isinstance(self._transport, HttpTransport):
            self._transport.close()

    # --- keys and the server -------------------------------------------------------------

    def signer(self) -> Signer:
        if self._signer is None:
            self._signer = self.home.signer(self._secret)
            if self._signer.kid.hex() != self.config.kid:
                raise StationError(f"the station key file holds key {self._signer.kid.hex()}, station.json names "
                                   f"{self.config.kid}")
        return self._signer

    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = HttpTransport(self.config.server)
        return self._transport

    def client(self) -> StationClient:
        return StationClient(self.transport(), self.config.code, self.signer(), self.clock)

    def sender(self) -> Sender:
        return Sender(self.outbox, self.client(), self.config.log_key, backoff=self.backoff, clock=self.clock)

    # --- caches ------------------------------------------------------------------------------

    def bundle(self) -> KeyBundle | None:
        try:
            return self.bundles.load()
        except BundleError:
            return None

    @property
    def stale_after(self) -> timedelta:
        return timedelta(hours=self.config.stale_after_hours)

    def bundle_status(self) -> dict[str, Any]:
        bundle = self.bundle()
        if bundle is None:
            return {"present": False, "stale": True, "age_hours": None, "issued_at": None}
        now = self.clock()
        age, behind = bundle.age(now), bundle.clock_behind(now)
        return {"present": True, "stale": bundle.is_stale(now, self.stale_after),
                "age_hours": round(age.total_seconds() / 3600, 1), "issued_at": format_time(bundle.issued_at),
                "stale_after_hours": self.config.stale_after_hours,
                "clock_behind_hours": round(behind.total_seconds() / 3600, 1) if behind is not None else None}

    def sync(self, actions: Sequence[str] = (), *, send: bool = True, force: bool = True) -> SyncReport:
        """Send the outbox, then fetch the key bundle and the expected lists, then report refusals. Never
        raises for the network: an unreachable server is an ``offline: ...`` error in the report.

        Sending comes first so that the lists fetched after it already count this station's own events
        (what it just received is no longer "on its way", and is now "held here")."""
        report = SyncReport()
        client = self.client()
        # the key bundle first: it names the log key the server signs with, so that a rotation of the log
        # key is followed before the receipts of this sync are checked
        self._fetch_bundle(client, report)
        if send:
            report.send = self.sender().send_due(force=force)
            report.errors.extend(e if not e.startswith("cannot reach") else f"offline: {e}"
                                 for e in report.send.errors)
        if report.online:
            self._fetch(client, actions, report)
        if send and report.online:
            self.report_refusals(report)
        return report

    def _fetch_bundle(self, client: StationClient, report: SyncReport) -> None:
        try:
            response = client.key_bundle()
            if response.status == 200:
                document = response.json()
                named = _named_log_key(document)
                if named is not None and named != self.config.log_key:
                    report.log_key_followed = self.follow_log_key(client, named)
                self.bundles.store(document)
                report.bundle = "updated"
            else:
                report.errors.append(f"key bundle: server answered {response.status}: {response.error_message()}")
        except TransportError as exc:
            report.errors.append(f"offline: {exc}")
        except BundleError as exc:
            report.bundle_refused = True
            report.errors.append(str(exc))

    def follow_log_key(self, client: StationClient, target: str) -> str:
        """The server signs with another log key than the pinned one (the institute rotated it): follow
        the rollovers from the pinned key, each signed by the key before, to ``target`` and pin it (the
        old keys kept, for the bundle cached until the next one). Raises :class:`BundleError` when no
        chain leads there: a forgery, or a key revoked and replaced, which must be pinned anew on purpose."""
        from custody.log.rollover import RolloverError, follow_rollovers, rollovers_of

        pinned = self.config.log_key
        response = client.log_key_rollovers()
        notes: list[str] = []
        if response.status == 200:
            try:
                notes = rollovers_of(response.json())
            except ValueError:  # not JSON
                notes = []
        try:
            chain = follow_rollovers(pinned, notes)
        except RolloverError as exc:
            chain = [pinned]
            reason = f" ({exc})"
        else:
            reason = ""
        if target not in chain:
            raise BundleError(
                f"the server now signs with log key {target}, but no rollover signed by the pinned key {pinned} "
                f"leads to it{reason}: refused. If the institute replaced a revoked log key, confirm the new key "
                "with it and set up the station's log key on purpose")
        followed = chain[:chain.index(target)]
        config = replace(self.config, log_key=target,
                         previous_log_keys=(*self.config.previous_log_keys, *followed))
        self.home.save_config(config)
        self.config = config
        self.bundles = BundleCache(self.home.bundle_path, config.log_key, config.previous_log_keys)
        return target

    def _fetch(self, client: StationClient, actions: Sequence[str], report: SyncReport) -> None:
        try:
            for action in dict.fromkeys([*actions, HELD_ACTION]):
                response = client.expected(action)
                if response.status == 200:
                    listed = self.expected_cache.store(action, response.json(), self.clock())
                    report.expected[action] = len(listed.entries)
                else:
                    report.errors.append(f"expected list ({action}): server answered {response.status}: "
                                         f"{response.error_message()}")
        except TransportError as exc:
            report.errors.append(f"offline: {exc}")

    def report_refusals(self, report: SyncReport) -> None:
        """Send refusal evidence to ``POST /api/v1/refusals``; a server without that endpoint (404) leaves it
        in the outbox. A report counts as delivered only with a receipt that verifies (as the events')."""
        pending = self.outbox.unreported_refusals()
        if not pending:
            return
        body = [{"id": f"{self.config.code}-R{r['seq']:07d}", "session": r["session"], "seen_at": r["seen_at"],
                 "reason": r["reason"], "message": r["message"], "text": r["text"], "text_sha256": r["text_sha256"],
                 "frame": r["frame"], "item": r["item"]} for r in pending]
        try:
            response = self.client().post_refusals(body)
        except TransportError as exc:
            report.refusals_note = f"offline: {exc}"
            return
        if response.status in (404, 405):
            report.refusals_note = (f"the server has no refusal-report endpoint yet; {len(pending)} refusal(s) kept "
                                    "in the outbox")
            return
        if response.status != 200:
            report.refusals_note = f"server answered {response.status}: {response.error_message()}"
            return
        results = response.json().get("results", [])
        done: dict[int, str] = {}
        origin = parse_verifier_key(self.config.log_key).name
        for row, sent, res in zip(pending, body, results, strict=False):
            if not isinstance(res, dict) or res.get("status") not in ("accepted", "duplicate"):
                continue
            try:
                done[row["seq"]] = verify_refusal_receipt(sent, res, self.config.code, self.config.log_key, origin)
            except ReceiptError as exc:  # kept unreported: sent again next time
                report.bad_refusal_receipts += 1
                report.errors.append(str(exc))
        self.outbox.mark_refusals_reported(done)
        report.refusals_reported = len(done)

    # --- sessions ------------------------------------------------------------------------------

    def knowledge(self, action: Action) -> tuple[Knowledge, str, str | None]:
        bundle = self.bundle()
        listed = self.expected_cache.load(action.value)
        held = self.expected_cache.load(HELD_ACTION)
        history = self.outbox.history()
        # what this station already recorded for this action is not expected again, even while the cached
        # list (fetched before) still names it
        done = {item for item, past in history.items() if any(p["action"] == action.value for p in past)}
        k = Knowledge(action=action, unit=self.config.unit, keyring=bundle.keyring if bundle else None,
                      expected={i: e for i, e in listed.entries.items() if i not in done} if listed else {},
                      held=dict(held.entries) if held and action.value != HELD_ACTION else {},
                      history=history, has_list=listed is not None)
        return k, ("server" if listed else "none"), (format_time(listed.fetched_at) if listed else None)

    def new_session(self, action: Action, counterpart: str | None) -> HandoverSession:
        knowledge, source, fetched = self.knowledge(action)
        session = HandoverSession(self.outbox.allocate_session_id(), action, self.config.unit, self.config.code,
                                  counterpart, knowledge, source, fetched)
        self.save_draft(session)
        return session

    def resume_session(self, session_id: str | None = None) -> HandoverSession | None:
        draft = self.outbox.load_draft(session_id)
        if draft is None:
            return None
        knowledge, _, _ = self.knowledge(Action(draft["action"]))
        return HandoverSession.from_json(draft, knowledge)

    def save_draft(self, session: HandoverSession) -> None:
        self.outbox.save_draft(session.id, session.to_json(), self.clock())

    def keep_refusals(self, session: HandoverSession) -> int:
        """Store the session's refusal evidence (idempotent); returns how many were new."""
        new = 0
        for text, verdict in session._verdicts.items():
            if not verdict.refused:
                continue
            r = session.refused.get(hashlib.sha256(text.strip().encode()).hexdigest())
            new += self.outbox.record_refusal(session=session.id, seen_at=self.clock(), reason=verdict.reason,
                                              message=verdict.message("en"), text=text,
                                              text_sha256=hashlib.sha256(text.strip().encode()).hexdigest(),
                                              frame=r.frame if r else None, item=verdict.item)
        return new

    def checkpoint_session(self, session: HandoverSession) -> None:
        """After a change: keep refusal evidence and the draft (both durable)."""
        if session.take_changed():
            self.keep_refusals(session)
            self.save_draft(session)

    def confirm(self, session: HandoverSession) -> list[str]:
        """Sign and store the session's events; returns their ids. Raises :class:`SessionIncomplete`."""
        problems = session.problems("en")
        if problems:
            raise SessionIncomplete(problems)
        self.keep_refusals(session)
        now = self.clock()
        # an outgoing session's manifest is signed now and committed with the events, so that it exists
        # exactly when they do; its files are written after the commit (and again by manifest() if lost)
        manifest = self.manifest_texts(session, now) if session.action in OUTGOING else []
        summary = {**session.summary(), **({"manifest": manifest} if manifest else {})}
        ids = self.outbox.record_session(session.id, session.action.value, session.counterpart, summary,
                                         session.event_drafts(now), self.signer(), now)
        if manifest:
            self.write_manifest_files(session.id, manifest)
        return ids

    def cancel(self, session: HandoverSession) -> None:
        self.keep_refusals(session)
        self.outbox.drop_draft(session.id)

    def manifest_texts(self, session: HandoverSession, now: datetime) -> list[str]:
        """The manifest QR texts of an outgoing session (signed with the station key)."""
        items = [ManifestItem(s.item, ItemKind.from_slug(s.kind), s.count, s.label_hash, s.box)
                 for s in session._recorded()]
        return make_manifests(id=session.id, from_unit=session.from_unit or self.config.unit,
                              to_unit=session.to_unit or self.config.unit, action=session.action.value,
                              created_at=now, station=self.config.code, items=items, signer=self.signer())

    def write_manifest_files(self, session_id: str, texts: Sequence[str]) -> list[Path]:
        """Save manifest texts under manifests/ as SESSION-N.txt and SESSION-N.png (each file atomically)."""
        from scanners.station.home import write_bytes_atomic
        from scanners.station.manifest import manifest_image

        folder = self.home.manifests_dir
        written = []
        for n, text in enumerate(texts, 1):
            png = io.BytesIO()
            manifest_image(text).save(png, format="PNG")  # type: ignore[attr-defined]
            write_bytes_atomic(folder / f"{session_id}-{n}.png", png.getvalue())
            write_bytes_atomic(folder / f"{session_id}-{n}.txt", (text + "\n").encode("ascii"))
            written.append(folder / f"{session_id}-{n}.txt")
        return written

    def manifest(self, session_id: str) -> list[str]:
        """The manifest texts of a confirmed outgoing session, from the outbox (the files are written again
        if a crash after the confirm lost them); empty if the session made none."""
        summary = self.outbox.session_summary(session_id)
        texts = [str(t) for t in (summary or {}).get("manifest", [])]
        folder = self.home.manifests_dir
        if texts and not all((folder / f"{session_id}-{n}.txt").exists() for n in range(1, len(texts) + 1)):
            self.write_manifest_files(session_id, texts)
        return texts

    def status(self) -> dict[str, Any]:
        counts = self.outbox.counts()
        oldest = self.outbox.oldest_pending()
        return {"station": self.config.code, "unit": self.config.unit, "server": self.config.server,
                "kid": self.config.kid, "log_key": self.config.log_key, "bundle": self.bundle_status(),
                "expected": {a: format_time(lst.fetched_at) for a in self.expected_cache.actions()
                             if (lst := self.expected_cache.load(a)) is not None},
                "outbox": counts, "oldest_pending": None if oldest is None else
                {"id": oldest[0], "station_time": oldest[1], "last_error": oldest[2]},
                "drafts": [{"session": s, "updated_at": t} for s, t in self.outbox.drafts()]}
