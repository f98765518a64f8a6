"""What the application holds for its lifetime: its cache of shared values."""

from __future__ import annotations

import threading
from typing import Any

from web.settings import Deadlines
from web.state import WebState


def test_requests_wanting_a_value_being_computed_wait_for_it() -> None:
    # When the log grows on the exam morning every officer's next page wants the new custody states: each
    # request built them (0.35 s each, one at a time, on the city demo; 8 officers at once waited 2 s each
    # in a process that rebuilds them, 14 s without this).
    st = WebState(instance=None, ledger=None, hasher=None, deadlines=Deadlines())  # type: ignore[arg-type]
    started, release = threading.Event(), threading.Event()
    computed: list[int] = []

    def compute() -> dict[str, Any]:
        computed.append(1)
        started.set()
        assert release.wait(10)
        return {"size": 7}

    got: list[Any] = []
    first = threading.Thread(target=lambda: got.append(st.cached(("states", "zk2017", 7), compute)))
    first.start()
    assert started.wait(10)
    others = [threading.Thread(target=lambda: got.append(st.cached(("states", "zk2017", 7), compute)))
              for _ in range(3)]
    for thread in others:
        thread.start()
    others[0].join(0.2)
    assert computed == [1] and got == []  # they wait; they do not compute it again
    release.set()
    for thread in (first, *others):
        thread.join(10)
    assert computed == [1] and len(got) == 4 and all(value is got[0] for value in got)
    assert st.cached(("states", "zk2017", 7), compute) is got[0] and computed == [1]
