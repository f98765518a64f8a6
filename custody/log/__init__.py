"""The transparency-log core: pure functions over bytes, no I/O, no database.

- ``jcs``: leaves as RFC 8785 canonical JSON.
- ``merkle``: RFC 6962 / 9162 tree over stored complete-subtree nodes: append, roots,
  inclusion and consistency proofs, and their verifiers.
- ``note``: c2sp.org/signed-note, verifier keys, c2sp.org/tlog-cosignature.
- ``checkpoint``: c2sp.org/tlog-checkpoint bodies, and opening a signed checkpoint.
- ``proofs``: c2sp.org/tlog-proof@v1 texts and consistency proof texts.

Storage passes in a batch reader ``get_nodes(ids) -> hashes``; ``integrate`` returns the
nodes to store. See README.md in this folder for the formats.
"""

from custody.log.checkpoint import Checkpoint, VerifiedCheckpoint, open_checkpoint, parse_checkpoint
from custody.log.jcs import canonical_json, loads_leaf
from custody.log.merkle import (
    EMPTY_ROOT,
    Integration,
    NodeId,
    NodeReader,
    StreamingRoot,
    consistency_proof,
    inclusion_proof,
    integrate,
    leaf_hash,
    node_hash,
    root,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from custody.log.note import (
    Note,
    NoteSignature,
    NoteVerifier,
    OpenedNote,
    VerifiedSignature,
    add_signature_lines,
    cosign,
    cosignature_message,
    cosigner_key,
    open_note,
    parse_signer_key,
    parse_unverified_note,
    parse_verifier_key,
    sign_note,
    signature_line,
    signer_key,
    verifier_key,
)
from custody.log.proofs import (
    TlogProof,
    VerifiedTlogProof,
    format_consistency_proof,
    format_tlog_proof,
    parse_consistency_proof,
    parse_tlog_proof,
    verify_tlog_proof,
)

__all__ = [
    "EMPTY_ROOT",
    "Checkpoint",
    "Integration",
    "NodeId",
    "NodeReader",
    "Note",
    "NoteSignature",
    "NoteVerifier",
    "OpenedNote",
    "StreamingRoot",
    "TlogProof",
    "VerifiedCheckpoint",
    "VerifiedSignature",
    "VerifiedTlogProof",
    "add_signature_lines",
    "canonical_json",
    "consistency_proof",
    "cosign",
    "cosignature_message",
    "cosigner_key",
    "format_consistency_proof",
    "format_tlog_proof",
    "inclusion_proof",
    "integrate",
    "leaf_hash",
    "loads_leaf",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "parse_consistency_proof",
    "parse_signer_key",
    "parse_tlog_proof",
    "parse_unverified_note",
    "parse_verifier_key",
    "root",
    "root_from_leaf_hashes",
    "sign_note",
    "signature_line",
    "signer_key",
    "verifier_key",
    "verify_consistency",
    "verify_inclusion",
    "verify_tlog_proof",
]
