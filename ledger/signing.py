"""Salted digests and party signatures of step records.

Digests (computed inside each party's worker; its secret and salts never leave it)::

    job_salt       = HKDF-SHA256(ikm=party_secret, salt=none, info="secureflow/job-salt/v1" || job_id, L=32)
    content_digest = keccak256(canonical bytes of the object)
    salted_digest  = keccak256(job_salt || content_digest)    # 0x + 64 hex in the record

``party_secret`` is the party's own 32 random bytes (``<party_dir>/secrets/salt``), ``job_id`` the job's
32 bytes (RFC 5869 HKDF with SHA-256, the standard library's ``hmac``). The salt is per job and per party,
so the same input in two jobs gives unrelated digests (records of different jobs cannot be linked), and a
party can derive the salt of a job again later (a model's share digests are checked with the salt of the
job in its lineage).

Canonical bytes: a table is its CSV (``index=False``, header, ``float_format="%.17g"``,
``lineterminator="\\n"``); a file is its bytes; a JSON-able report is its RFC 8785 JSON.

Signed payload of a party (EIP-191, ``personal_sign`` of a 32-byte hash)::

    payload   = RFC 8785 canonical JSON of the StepRecord in which ``parties`` is replaced
                by the one-element list [this party's PartyDigests with "signature": null]
    digest    = keccak256(payload)
    signature = sign(encode_defunct(primitive=digest), member_key)  # 65 bytes, 0x + 130 hex

So a signature covers the job id, seq, algorithm, parameter hash, code version,
status, error class, timings and the party's own digests; `verify_party_signature`
checks it against the party's address with the full record in hand.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from secureflow.ledger.records import PartyDigests, StepRecord, canonical_json


def keccak_hex(data: bytes) -> str:
    return "0x" + bytes(keccak(data)).hex()


JOB_SALT_INFO = b"secureflow/job-salt/v1"


def job_salt(party_secret: bytes, job_id: str | bytes) -> bytes:
    """The party's salt for one job: HKDF-SHA256 (RFC 5869) of its secret with the job id as context.

    One output block, so HKDF-Expand is one HMAC; no salt (HashLen zero bytes, as the RFC says).
    """
    job = bytes.fromhex(job_id.removeprefix("0x")) if isinstance(job_id, str) else bytes(job_id)
    if len(job) != 32:
        raise ValueError(f"a job id is 32 bytes, got {len(job)}")
    if len(party_secret) < 16:
        raise ValueError("a party secret must be at least 16 bytes")
    return hkdf_sha256(party_secret, JOB_SALT_INFO + job)


def hkdf_sha256(ikm: bytes, info: bytes) -> bytes:
    """RFC 5869 HKDF-SHA256 without salt, 32 bytes of output: Extract, then one block of Expand."""
    prk = hmac.new(b"\0" * 32, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def salted_digest(salt: bytes, content_digest: bytes) -> str:
    """The digest that goes into a record: keccak(salt || content digest)."""
    return keccak_hex(salt + content_digest)


def signing_payload(record: StepRecord, party: PartyDigests) -> bytes:
    """The canonical JSON one party signs: the record with only its own digests, unsigned."""
    body = record.model_dump(mode="json")
    body["parties"] = [party.model_copy(update={"signature": None}).model_dump(mode="json")]
    return canonical_json(body)


def signing_digest(record: StepRecord, party: PartyDigests) -> bytes:
    return bytes(keccak(signing_payload(record, party)))


def sign_party(record: StepRecord, party: PartyDigests, private_key: bytes) -> str:
    """Sign ``party``'s slice of ``record``; returns 0x + 130 lower-case hex."""
    signed = Account.sign_message(encode_defunct(primitive=signing_digest(record, party)), private_key)
    return "0x" + bytes(signed.signature).hex().removeprefix("0x")


def recover_party(record: StepRecord, party: PartyDigests) -> str | None:
    """The address that signed ``party``'s slice, or None when it is unsigned."""
    if party.signature is None:
        return None
    message = encode_defunct(primitive=signing_digest(record, party))
    return str(Account.recover_message(message, signature=bytes.fromhex(party.signature[2:])))


def verify_party_signature(record: StepRecord, party: PartyDigests) -> bool:
    recovered = recover_party(record, party)
    return recovered is not None and recovered.lower() == party.party.lower()


def _recover_or_none(record: StepRecord, party: PartyDigests) -> str | None:
    try:
        return recover_party(record, party)
    except Exception:  # a malformed signature (bad recovery id, not a curve point)
        return None


def signature_problems(
    record: StepRecord,
    parties: Sequence[str],
    recover: Callable[[StepRecord, PartyDigests], str | None] = _recover_or_none,
) -> list[str]:
    """What keeps ``record`` from being attributable to every one of the job's ``parties`` (empty: nothing).

    The record must carry exactly one part per job party, each signed by that party's own key, and no
    part of anyone else. The API checks this before it accepts a record and the verifier before it calls
    a record valid; each problem names the party. ``recover``: who signed a part (None: malformed),
    e.g. a cached recovery.
    """
    expected = [str(to_checksum_address(p)) for p in parties]
    entries: dict[str, list[PartyDigests]] = {}
    for entry in record.parties:
        entries.setdefault(str(to_checksum_address(entry.party)), []).append(entry)
    problems: list[str] = []
    for party in expected:
        found = entries.get(party, [])
        if not found:
            problems.append(f"job party {party} has no part in the record")
        elif len(found) > 1:
            problems.append(f"job party {party} appears {len(found)} times")
        elif found[0].signature is None:
            problems.append(f"job party {party} has not signed its part")
        else:
            signer = recover(record, found[0])
            if signer is None:
                problems.append(f"the signature of job party {party} is malformed")
            elif str(to_checksum_address(signer)) != party:
                problems.append(f"the part of job party {party} is signed by {signer}, not by {party}")
    outsiders = sorted(set(entries) - set(expected))
    if outsiders:
        problems.append(f"the record has parts of {', '.join(outsiders)}, not a party of the job")
    return problems
