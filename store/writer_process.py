"""The log writer in a process of its own, for a serving ledger.

In ``custody serve`` the request threads, the signature workers' feeder and the log
writer shared one interpreter: under load the writer had the CPU only about half the time
it was busy, waiting to get the interpreter back at every database call. Here the
writer (the group-commit appends: chains, custody rules, tree, checkpoint, receipts) runs
in a child process with its own interpreter and its own database connection; the server
keeps verifying signatures and grouping batches, and hands each group over a pipe.

Nothing about the log changes: the child is one more writer process, and the log's single
writer lock (SQLite ``BEGIN IMMEDIATE``, the PostgreSQL advisory lock) already orders it with
any other (``custody`` commands, a second server). Each group is one transaction in the
child, so a child killed mid-batch leaves the whole batch or none of it; its callers get an
error, no receipt, and send again (a replay is recognised by its event id). The next group
starts a new child.

The key passphrase reaches the child over the pipe, never in its arguments or environment.
The child ends when the server does (it watches its parent), and ignores Ctrl+C at the
terminal: the server closes it, so that it stores the custody states first.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import pickle
import signal
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from custody.errors import CustodyError

if TYPE_CHECKING:
    from store.instance import Instance
    from store.ledger import _Pending

log = logging.getLogger(__name__)


class WriterStopped(CustodyError):
    """The writer process ended before it answered (killed, out of memory): the group was not
    acknowledged; whether it was committed shows when it is sent again (duplicates)."""


class WriterProcess:
    """The parent's handle on the writer child of one instance.

    Groups are pipelined: the next group may be sent before the answer to the last, so the child
    appends one while the parent prepares and sends the next (sent one at a time, the child waited
    idle at every hand-over). The child answers in order. One thread sends (the ledger's writer
    thread) and one receives (its answers thread); :meth:`close` and :meth:`flush_states` may come
    from any thread and wait until no group awaits its answer.
    """

    def __init__(self, instance: Instance):
        self.home = Path(instance.home)
        self.url = instance.db.url
        self._keys = instance.keys
        self._lock = threading.RLock()  # reentrant: a failed read stops the child, held or not
        self._answered = threading.Condition(self._lock)  # notified when no group awaits its answer
        self._sent = 0  # groups sent and not yet answered
        self._process: Any = None
        self._conn: Connection | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Start the child now and wait until it is ready (it builds the custody states first)."""
        with self._lock:
            self._ensure()

    def send(self, generation: int, now: datetime, pending: Sequence[_Pending]) -> None:
        """Hand over verified submissions, received at ``now`` and checked against the parent's key registry
        ``generation``, to be appended; :meth:`receive` gets the answers, in the order the groups were sent."""
        # An accepted submission is not sent: the child rebuilds it from the event's canonical bytes in the
        # verdict (what the station signed; the same JSON), at a tenth of what unpickling it again cost.
        items = []
        for p in pending:
            wire = p.to_wire()
            items.append((None if len(wire) > 2 else p.submission, wire))
        with self._lock:
            if not self._sent:  # (re)start the child only with nothing outstanding: its answers are lost
                self._ensure()
            if self._conn is None:
                raise WriterStopped("the log writer process ended before it answered an earlier group; "
                                    "nothing was acknowledged: send again")
            try:
                self._conn.send(("append", generation, now, items))
            except OSError as exc:
                self._stop()
                raise WriterStopped(f"the log writer process is gone ({exc}); send again") from None
            self._sent += 1

    def receive(self) -> tuple[list[dict[str, Any]], bool]:
        """The answer to the oldest group sent: the results :meth:`Ledger.submit` returns, and whether the
        writer read the key registry again meanwhile (a key registered, rotated or revoked: the parent must
        read it too, or it would go on verifying against its older copy). Raises what the child raised for
        the group, or WriterStopped. One caller at a time; it waits for the child without the lock, so that
        :meth:`send` can hand over the next group meanwhile."""
        with self._lock:
            if not self._sent:
                raise RuntimeError("no group awaits an answer")
            conn = self._conn
        try:
            if conn is None:  # the child ended while an earlier group was outstanding
                raise WriterStopped("the log writer process ended before it answered; nothing was "
                                    "acknowledged: send again")
            return self._receive(conn)  # type: ignore[no-any-return]
        finally:
            with self._lock:
                self._sent -= 1
                if not self._sent:
                    self._answered.notify_all()

    def flush_states(self) -> None:
        with self._lock:
            self._answered.wait_for(lambda: not self._sent)
            self._call(("flush",))

    def close(self) -> None:
        """Let the child store the custody states and end; wait for it."""
        with self._lock:
            self._answered.wait_for(lambda: not self._sent)
            if self._process is not None and self._process.is_alive() and self._conn is not None:
                try:
                    self._conn.send(("close",))
                    self._receive()
                except (WriterStopped, OSError) as exc:
                    log.warning("the log writer process did not close cleanly: %s", exc)
            self._stop()

    # --- the pipe ---------------------------------------------------------------------

    def _ensure(self) -> None:
        if self._process is not None and self._process.is_alive():
            return
        if self._process is not None:
            log.warning("the log writer process (pid %s) ended with code %s; starting a new one",
                        self._process.pid, self._process.exitcode)
        self._stop()
        context = multiprocessing.get_context("spawn")  # a fork would copy the server's threads and connections
        ours, theirs = context.Pipe()
        process = context.Process(target=_run, args=(theirs, os.getpid()), name="custody-log-writer", daemon=True)
        process.start()
        theirs.close()  # ours sees EOF when the child ends
        self._process, self._conn = process, ours
        try:
            ours.send((str(self.home), self.url, self._keys.passphrase()))
            self._receive()
        except BaseException:
            self._stop()
            raise

    def _call(self, message: tuple[Any, ...]) -> Any:
        self._ensure()
        assert self._conn is not None
        try:
            self._conn.send(message)
        except OSError as exc:
            self._stop()
            raise WriterStopped(f"the log writer process is gone ({exc}); send again") from None
        return self._receive()

    def _receive(self, conn: Connection | None = None) -> Any:
        """The child's next answer on ``conn`` (default: the current pipe, under the lock)."""
        conn = conn or self._conn
        assert conn is not None
        try:
            status, value = conn.recv()
        except (EOFError, OSError):
            with self._lock:
                process = self._process
                code = process.exitcode if process is not None else None
                if conn is self._conn:
                    self._stop()
            raise WriterStopped("the log writer process ended before it answered"
                                + (f" (exit code {code})" if code is not None else "")
                                + "; nothing was acknowledged: send again") from None
        if status == "error":
            raise value
        return value

    def _stop(self) -> None:
        conn, process, self._conn, self._process = self._conn, self._process, None, None
        if conn is not None:
            conn.close()
        if process is not None:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling as itself, else a :class:`CustodyError` naming it."""
    try:
        copy = pickle.loads(pickle.dumps(exc))
        if type(copy) is type(exc) and str(copy) == str(exc):
            return exc
    except Exception:
        pass
    return CustodyError(f"{type(exc).__name__}: {exc}")


class _Clock:
    """The child's clock is the parent's: each group comes with the time it was received."""

    def __init__(self) -> None:
        self.now: datetime | None = None

    def __call__(self) -> datetime:
        assert self.now is not None
        return self.now


def _submission_of(wire: tuple[Any, ...]) -> dict[str, Any]:
    """The submission an accepted verdict was made from: its event is the JSON of the canonical bytes the
    station signed (the submitted object, as JSON values), with the key id and signature."""
    try:
        event = orjson.loads(wire[-1])
    except orjson.JSONDecodeError:  # what orjson refuses and the standard parser reads (lone surrogates)
        event = json.loads(wire[-1])
    return {"event": event, "kid": wire[0], "sig": wire[1]}


def _run(conn: Connection, parent: int) -> None:
    """The child: open the instance, build the custody states, then append what the parent sends."""
    from custody.keyring import Role
    from store.ledger import Ledger, _Pending, settle_collector
    from store.verifier_pool import _exit_with_parent, _from_wire

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent,), name="parent-watch", daemon=True).start()
    clock = _Clock()
    try:
        home, url, secret = conn.recv()
        from store.instance import open_instance

        instance = open_instance(Path(home), secret=secret, url=url)
        del secret
        # a wrong passphrase fails here, before the custody states are built
        instance.keys.private_key(Role.LOG_SIGNER, instance.institute, datetime.now(UTC))
        ledger = Ledger(instance, clock=clock)
        ledger.start()
        settle_collector()
    except BaseException as exc:  # noqa: BLE001 (the parent raises it)
        conn.send(("error", _portable(exc)))
        return
    conn.send(("ok", None))
    parent_generation = None
    trusted = None  # this process's registry generation read after the parent's latest
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break  # the parent is gone
        kind = message[0]
        try:
            if kind == "append":
                _, generation, now, items = message
                if generation != parent_generation:
                    # the parent read its registry again: read ours after it, so ours is at least as new
                    ledger.keyring(refresh=True)
                    parent_generation = generation
                    trusted = ledger._registry()[1]
                _, ours = ledger._registry()
                # The parent's checks stand if this process has not read the registry again since (a key
                # logged meanwhile): else the group was sent before the parent heard of it (groups are
                # pipelined) and its signatures are checked again here, against the registry as it is now.
                stamp = ours if ours == trusted else -1
                clock.now = now
                people: dict[tuple[str, str], Any] = {}
                pending = []
                for submission, wire in items:
                    if submission is None:
                        submission = _submission_of(wire)
                    pending.append(_Pending.of(submission, _from_wire(wire, submission, people), stamp))
                try:
                    results = ledger._append_pending(pending)
                except BaseException:
                    ledger._forget()
                    raise
                value: Any = (results, ledger._registry()[1] != ours)
            elif kind == "flush":
                ledger.flush_states()
                value = None
            elif kind == "close":
                ledger.close()
                conn.send(("ok", None))
                break
            else:
                raise CustodyError(f"the log writer got an unknown request {kind!r}")
        except BaseException as exc:  # noqa: BLE001 (the parent raises it)
            conn.send(("error", _portable(exc)))
            continue
        conn.send(("ok", value))
    instance.close()
