"""The station's errors: part of custody's one exception tree (:class:`~custody.errors.CustodyError`).

The command line catches them once, at the edge, and turns them into a
message and an exit code.
"""

from __future__ import annotations

from custody.errors import CustodyError


class StationError(CustodyError):
    """The station home, its configuration or its caches cannot be used."""

    exit_code = 2


class StationNotInitialised(StationError):
    """No station was set up in this folder (run ``custody station init``)."""


class BundleError(StationError):
    """A key bundle was refused: not signed by the pinned log key, another log's, or older than the cached one."""

    exit_code = 1


class ManifestError(CustodyError):
    """A handover manifest QR was refused: malformed, or not signed by a registered station."""


class ReceiptError(CustodyError):
    """A receipt from the server does not prove that exactly our event is in the log."""


class ServerUnavailable(CustodyError):
    """The server could not be reached, or answered with an error; nothing was lost."""

    exit_code = 3
