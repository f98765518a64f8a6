"""The one exception tree of custody.

Every error that a user or an outside verifier may see derives from
:class:`CustodyError`. The command line and the web layer catch it once, at the
edge, and turn it into an exit code or an HTTP status; nothing below them
swallows it. Messages say what was expected and what was found, and name the
label, item, leaf index or row they concern.
"""

from __future__ import annotations

from typing import Any


class CustodyError(Exception):
    """Base of every error custody raises on purpose."""

    #: Exit code for the command line: 1 for integrity or verification failures,
    #: 2 for usage errors (bad input that is not evidence of tampering).
    exit_code = 1


# --- labels -----------------------------------------------------------------


class LabelError(CustodyError):
    """A label was refused. Subclasses say why."""


class NotACustodyLabel(LabelError):
    """The text is not a custody label at all (another QR code, a parcel number)."""


class MalformedLabel(LabelError):
    """The text claims to be a custody label but its encoding is broken."""


class UnknownKey(LabelError):
    """No registered key has the label's key id."""


class BadSignature(LabelError):
    """A key with the label's key id exists, but the signature does not verify."""


class KeyNotValid(LabelError):
    """The key was not valid for this purpose when the label says it was signed.

    ``key``: the key that made the signature (a ``custody.keyring.PublicKey``), when
    ``KeyRing.verify`` raised it: a caller that needs its revocations need not verify again.
    """

    key: Any = None


class KeyRevoked(KeyNotValid):
    """The key was revoked before the label says it was signed."""


# --- keys -------------------------------------------------------------------


class KeyStoreError(CustodyError):
    """A key file or the key registry could not be used."""


class WrongPassphrase(KeyStoreError):
    """The passphrase does not open the private key."""


class MissingKey(KeyStoreError):
    """No private or public key exists for the requested role and owner."""


# --- exam plan --------------------------------------------------------------


class PlanError(CustodyError):
    """The exam plan was refused; nothing was imported.

    ``problems`` lists every problem found, each as (source, row, reason), so
    that the officer can fix the whole file in one go.
    """

    exit_code = 2

    def __init__(self, problems: list[tuple[str, int | None, str]]):
        self.problems = problems
        lines = [
            f"{source} row {row}: {reason}" if row is not None else f"{source}: {reason}"
            for source, row, reason in problems
        ]
        shown = lines[:40]
        if len(lines) > len(shown):
            shown.append(f"... and {len(lines) - len(shown)} more problem(s)")
        super().__init__("the exam plan was refused; nothing was imported:\n  " + "\n  ".join(shown))


# --- instance ---------------------------------------------------------------


class InstanceError(CustodyError):
    """The instance (home folder, database) is missing or not usable."""

    exit_code = 2


class NotFound(CustodyError):
    """A named thing (item, unit, key) does not exist."""

    exit_code = 2


# --- printing ---------------------------------------------------------------


class PrintingError(CustodyError):
    """Labels could not be printed (rendered to PDF or PNG)."""

    exit_code = 2


class FontMissing(PrintingError):
    """No font that can print Chinese and be embedded in a PDF was found.

    The message names the places searched and the Debian package to install.
    """


# --- log --------------------------------------------------------------------
# The transparency log core (custody/log/): Merkle proofs, leaves, signed notes,
# checkpoints and cosignatures. Messages give the index and sizes concerned and
# every hash involved, in hex, both the one expected and the one found.


class LogError(CustodyError):
    """The transparency log, one of its proofs, or one of its notes was refused."""


class TreeSizeError(LogError):
    """A proof or root was asked for an index or tree size the tree does not have.

    A usage error (a bad request), not evidence of tampering.
    """

    exit_code = 2


class NodeStoreError(LogError):
    """The node store answered a batched read with the wrong number or size of hashes."""


class LeafError(LogError):
    """A leaf is not the RFC 8785 canonical JSON of an object with a string ``type``."""


class InclusionProofError(LogError):
    """An inclusion proof does not prove the leaf is in the tree with that root."""


class ConsistencyProofError(LogError):
    """A consistency proof does not prove the newer tree extends the older one."""


class NoteError(LogError):
    """A signed note, a key text or a signature line is malformed."""


class NoteSignatureError(NoteError):
    """No signature by the expected key verifies, or a known key's signature is bad."""


class CheckpointError(LogError):
    """A checkpoint body is malformed, or is not the checkpoint that was expected."""


class TlogProofError(LogError):
    """A c2sp.org/tlog-proof text or a consistency proof text is malformed."""


# --- scanning ---------------------------------------------------------------


class SourceError(CustodyError):
    """A frame source (image, folder, video file, camera, stream) cannot be read:
    missing, not an image or video, corrupt or truncated, or a camera that
    cannot be opened. The message names the source and what was found."""

    exit_code = 2


class SourceLost(SourceError):
    """A live camera or stream stopped delivering frames mid-session and did not
    come back within the allowed reconnect attempts. Frames already delivered
    stay valid."""
