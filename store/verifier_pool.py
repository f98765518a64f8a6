"""Station signatures checked in worker processes, off the interpreter lock the log writer needs.

``custody serve`` runs its request threads and the log writer in one process.
The Ed25519 check itself releases the interpreter lock (libsodium, through
cffi), but parsing and checking the event around it is Python and takes about
as long (measured: ~70 µs for the signature, ~70 µs for the rest), so checks in
request threads would still take turns with the writer on one core. A
:class:`VerifierPool` does that work in other processes: each keeps its
own copy of the key registry, read from the database, and re-reads it when the
ledger says the registry changed (a new *generation*: the ledger re-read it
after a registration, rotation or revocation). Answers come back as parsed
events or the reason a submission is refused, exactly what
:func:`custody.events.verify_submission` gives in the caller's thread. A
parsed event travels back as a tuple of plain values and is rebuilt around the
caller's own copy of the submitted object (``raw``): unpickling whole events
(enums, people, the submitted object again) was the server's fourth largest
cost under load.

A pool that breaks (a worker killed) is not trusted again: the caller checks
the submissions itself and a new pool is started for later requests. Nothing
is accepted or refused differently for having gone through a worker. Workers
ignore Ctrl+C (the server stops them) and end when the server is gone.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from custody.events import ACTION_BY_VALUE, CONDITION_BY_VALUE, Event, EventError, Person, verify_submission
from custody.keyring import KeyRing

log = logging.getLogger(__name__)

#: Submissions a request must carry before a worker checks them: for fewer, the round trip costs more
#: than the check.
MIN_BATCH = 4
#: A request's submissions go to one worker up to this many, else are split over the workers.
SPLIT = 64
#: Seconds between a worker's checks that the server that started it still runs.
PARENT_CHECK = 1.0
#: How much lower a worker's scheduling priority is than the server's (``nice``): the log writer is the
#: one step that cannot run in parallel, so when the cores are busy the workers give way to it and
#: check signatures with the time it leaves (measured on the ingest bench: 1-10 % more events/s).
WORKER_NICENESS = 10


@dataclass
class Verdict:
    """One submission checked: the event, key id and signature, or why it is refused.

    ``wire``: the verdict as a worker sent it (:func:`_to_wire`), kept for a writer process, which
    rebuilds the event itself; such a verdict for an accepted submission has no ``event`` here
    (:meth:`VerifierPool.check` with ``build=False``).
    """

    event: Event | None = None
    kid: str = ""
    sig: str = ""
    error: str | None = None
    error_code: str | None = None
    wire: tuple[Any, ...] | None = None

    @classmethod
    def unbuilt(cls, wire: tuple[Any, ...]) -> Verdict:
        """The verdict ``wire`` holds, its event not rebuilt."""
        if len(wire) == 2:
            return cls(error=wire[0], error_code=wire[1], wire=wire)
        return cls(kid=wire[0], sig=wire[1], wire=wire)


def error_code(exc: Exception) -> str:
    """``UnknownKey`` -> ``unknown_key``: the code a refusal carries."""
    name = type(exc).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def check(submission: Any, keys: KeyRing) -> Verdict:
    """Verify one station submission against ``keys``."""
    try:
        signed, _ = verify_submission(submission, keys)
    except EventError as exc:
        return Verdict(error=str(exc), error_code=error_code(exc))
    return Verdict(signed.event, signed.kid, signed.sig)


def load_keyring(url: str) -> KeyRing:
    """The whole key registry of the database at ``url``."""
    from sqlalchemy import select

    from keys.manager import to_public_key
    from store.db import Database
    from store.models import KeyRecord

    db = Database(url)
    try:
        with db.session() as s:
            return KeyRing(to_public_key(r) for r in s.scalars(select(KeyRecord).order_by(KeyRecord.id)))
    finally:
        db.dispose()


# --- in a worker process ----------------------------------------------------------

_worker: dict[str, Any] = {}


def _start_worker(url: str) -> None:
    _worker.update(url=url, generation=None, keys=None)
    try:
        os.nice(WORKER_NICENESS)
    except OSError:  # not allowed here: run at the server's priority
        pass
    # Ctrl+C at the terminal reaches the whole process group: the server stops its workers itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="parent-watch", daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """End this worker when the server that started it is gone (killed, crashed): no orphans."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK)
    os._exit(0)


def _check_in_worker(generation: int, submissions: Sequence[Any]) -> list[tuple[Any, ...]]:
    if _worker["generation"] != generation:
        # at least as new as the caller's copy: read after the caller read its own
        _worker.update(keys=load_keyring(_worker["url"]), generation=generation)
    keys = _worker["keys"]
    return [_to_wire(check(s, keys)) for s in submissions]


def _to_wire(verdict: Verdict) -> tuple[Any, ...]:
    """A verdict as plain values (see :func:`_from_wire`): a refusal is two, an accepted event twenty."""
    event = verdict.event
    if event is None:
        return verdict.error, verdict.error_code
    return (verdict.kid, verdict.sig, event.id, event.item, event.label, event.action.value, event.from_unit,
            event.to_unit, tuple((p.staff, p.badge) for p in event.handed_by),
            tuple((p.staff, p.badge) for p in event.received_by), event.station, event.station_time,
            event.seal_number, event.seal_condition.value if event.seal_condition is not None else None,
            event.count, event.reason, event.note, event.photo, event.box, event.canonical())


def _from_wire(wire: tuple[Any, ...], submission: Any, people: dict[tuple[str, str], Person]) -> Verdict:
    """The verdict :func:`_to_wire` sent, its event around ``submission``'s own event object (what the
    worker parsed a copy of). ``people``: the people made so far for this request's events (a station's
    staff sign many of them; a person is a frozen value, shared)."""
    if len(wire) == 2:
        return Verdict(error=wire[0], error_code=wire[1])
    (kid, sig, id_, item, label, action, from_unit, to_unit, handed, received, station, station_time, seal_number,
     seal_condition, count, reason, note, photo, box, canonical) = wire
    return Verdict(Event.of(
        id=id_, item=item, label=label, action=ACTION_BY_VALUE[action], from_unit=from_unit, to_unit=to_unit,
        handed_by=tuple([people.get(p) or people.setdefault(p, Person.of(*p)) for p in handed]),
        received_by=tuple([people.get(p) or people.setdefault(p, Person.of(*p)) for p in received]),
        station=station, station_time=station_time, seal_number=seal_number,
        seal_condition=CONDITION_BY_VALUE[seal_condition] if seal_condition is not None else None, count=count,
        reason=reason, note=note, photo=photo, box=box, raw=submission["event"], _canonical=canonical), kid, sig)



# --- in the server ----------------------------------------------------------------

class VerifierPool:
    """``workers`` processes checking station submissions for the database at ``url``."""

    def __init__(self, url: str, workers: int):
        if workers < 1:
            raise ValueError("a verifier pool needs at least one worker")
        self.url = url
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                # spawn: the server has threads and open database connections that a fork would copy
                self._executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                     initializer=_start_worker, initargs=(self.url,))
            return self._executor

    def start(self) -> None:
        """Start the workers now (they import the code and read the registry), not on the first request."""
        pool = self._pool()
        for future in [pool.submit(_check_in_worker, 0, []) for _ in range(self.workers)]:
            future.result()

    def check(self, submissions: Sequence[Any], generation: int, *, build: bool = True) -> list[Verdict] | None:
        """Verdicts for ``submissions`` against registry ``generation``; None if the pool failed (check inline).
        Without ``build``, accepted events are left as the workers sent them (:meth:`Verdict.unbuilt`): a
        server whose writer process rebuilds them spares its own interpreter the work."""
        pool = self._pool()
        size = max(SPLIT, -(-len(submissions) // self.workers))  # a big batch over every worker
        try:
            futures = [pool.submit(_check_in_worker, generation, submissions[i:i + size])
                       for i in range(0, len(submissions), size)]
            wires = [v for f in futures for v in f.result()]
        except (BrokenProcessPool, OSError) as exc:
            log.warning("signature workers failed (%s); checking in the server and starting new workers", exc)
            with self._lock:
                if self._executor is pool:
                    self._executor = None
            pool.shutdown(wait=False, cancel_futures=True)
            return None
        if not build:
            return [Verdict.unbuilt(w) for w in wires]
        people: dict[tuple[str, str], Person] = {}
        return [_from_wire(w, s, people) for w, s in zip(wires, submissions, strict=True)]

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
