"""A test hook that stops the station at a named step, so a test can kill it there.

When the environment variable ``CUSTODY_STATION_UNSAFE_PAUSE_AT`` names a
step, the process writes ``paused at STEP`` to stderr and sleeps (an hour)
when it reaches that step; the crash tests SIGKILL it there. Never set it on
a real station: the station would hang. Steps: ``confirm_before_commit``
(inside the confirm transaction), ``before_send`` (events stored, nothing
posted), ``after_response`` (the server stored the batch and answered; the
answer is not read yet), ``receipts_before_commit`` (receipts verified, inside
the transaction that stores them).
"""

from __future__ import annotations

import os
import sys
import time

ENV = "CUSTODY_STATION_UNSAFE_PAUSE_AT"
STEPS = ("confirm_before_commit", "before_send", "after_response", "receipts_before_commit")


def pause_point(step: str) -> None:
    if os.environ.get(ENV) == step:
        sys.stderr.write(f"paused at {step}\n")
        sys.stderr.flush()
        time.sleep(3600)
