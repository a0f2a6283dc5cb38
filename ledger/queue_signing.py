"""Coordinator signatures on the entries of a node's inbound queue (one canonical encoding, one signer).

A coordinator signs every entry it puts on a party's queue; the party's node recovers the signer
before it acts and drops the entry when the signature is missing or invalid. The signed bytes::

    payload   = RFC 8785 canonical JSON of {"domain": "secureflow/queue-entry/v1", **entry without "sig"}
    digest    = keccak256(payload)                       # `secureflow.ledger.records.canonical_json`
    sig       = sign(encode_defunct(primitive=digest), coordinator_key)   # 0x + 130 hex, in "sig"

The entry carries its session, op, payload, expiry (``exp``), the target party (``party``) and the
session's counter (``ctr``), so a signed entry is valid for one party of one session only, and a node
refuses a counter it has seen (a replay within the session). The same canonicalisation as every
anchored hash: no second canonical form.

A node signs its replies to the coordinator the same way with its member key, under `REPLY_DOMAIN`
(with the session, its party and a per-session counter), so the coordinator takes a party's ports,
worker replies and exits only from that party's own node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct

from secureflow.ledger.errors import LedgerError
from secureflow.ledger.merkle import keccak256
from secureflow.ledger.records import canonical_json

DOMAIN = "secureflow/queue-entry/v1"
REPLY_DOMAIN = "secureflow/node-reply/v1"
"""The domain of a node's replies to the coordinator, signed with the node's member key (never valid as an
entry of a node's queue, nor an entry as a reply)."""
LOG_REQUEST_DOMAIN = "secureflow/log-request/v1"
"""The domain of a request for one job's log lines to a party's node: a signature under it is never valid as a
queue entry (it cannot make a node act on a job), only as a request to read that job's scrubbed log."""
LOG_REPLY_DOMAIN = "secureflow/node-log-reply/v1"
"""The domain of a node's answer to a log request, signed with the node's member key."""
SIGNATURE_FIELD = "sig"


class EntrySigningError(LedgerError):
    """A queue entry cannot be signed (it is not canonical JSON, e.g. a NaN or an integer beyond 2**53)."""


def entry_digest(entry: Mapping[str, Any], domain: str = DOMAIN) -> bytes:
    """keccak256 of the canonical JSON of ``entry`` (its ``sig`` left out) under ``domain``."""
    body = {k: v for k, v in entry.items() if k != SIGNATURE_FIELD}
    if "domain" in body:
        raise EntrySigningError(
            "a queue entry may not carry its own 'domain' field (it would replace the signing domain)",
            hint="name the field otherwise",
        )
    try:
        payload = canonical_json({"domain": domain, **body})
    except Exception as exc:  # rfc8785 refuses NaN, infinities and integers it cannot represent
        raise EntrySigningError(
            f"a queue entry is not canonical JSON ({type(exc).__name__})",
            hint="send only finite numbers and integers within +-2**53 to the party nodes",
        ) from None
    return keccak256(payload)


def sign_entry(entry: Mapping[str, Any], private_key: str | bytes, domain: str = DOMAIN) -> dict[str, Any]:
    """``entry`` with its signature under ``domain`` in ``sig`` (0x + 130 hex)."""
    signed = Account.sign_message(encode_defunct(primitive=entry_digest(entry, domain)), private_key)
    return {**entry, SIGNATURE_FIELD: "0x" + bytes(signed.signature).hex().removeprefix("0x")}


def entry_signer(entry: Mapping[str, Any], domain: str = DOMAIN) -> str | None:
    """The lower-case address that signed ``entry``; None when it is unsigned, malformed or not canonical."""
    sig = entry.get(SIGNATURE_FIELD)
    if not isinstance(sig, str) or not sig.startswith("0x"):
        return None
    try:
        signature = bytes.fromhex(sig[2:])
        message = encode_defunct(primitive=entry_digest(entry, domain))
        if len(signature) != 65:
            return None
        return str(Account.recover_message(message, signature=signature)).lower()
    except Exception:  # a malformed signature (bad hex, v, r or s) or a non-canonical entry: nobody
        return None
