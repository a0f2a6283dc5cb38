"""What the coordinator and a party worker exchange, and the SPU runtime profiles.

Transport: a Unix socket pair created by the coordinator; the worker inherits
its end as a file descriptor and both sides wrap it in
`multiprocessing.connection.Connection` (pickled dicts, length-prefixed). A
request is ``{"op": ..., **args}``; a reply is ``{"ok": True, ...}`` or
``{"ok": False, "error_class": ..., "message": ...}``. The worker first sends
``{"op": "hello"}`` (before importing SecretFlow) and then ``{"op": "ready"}``.
Messages carry names, metadata, digests and signatures, never a party's cells,
salt or key.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

# SPU runtime configurations, passed as strings (enums from SecretFlow's test helpers do not serialise).
# "precise" exists because 18 fraction bits made VIF return 0.0 at ~51k rows (measured).
# One set per SPU protocol a job may name (`JobManifest.spu_protocol`): SEMI2K runs any number of
# parties; ABY3 (replicated secret sharing, honest majority) exactly three, on the smaller FM64 ring for
# the default profile (measured 1.6-1.9x faster than SEMI2K FM128 on SS-LR and SS-XGB, DESIGN.md).
SPU_PROTOCOL_PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "SEMI2K": {
        "default": {"protocol": "SEMI2K", "field": "FM128", "fxp_fraction_bits": 18},
        "precise": {"protocol": "SEMI2K", "field": "FM128", "fxp_fraction_bits": 40},
    },
    "ABY3": {
        "default": {"protocol": "ABY3", "field": "FM64", "fxp_fraction_bits": 18},
        "precise": {"protocol": "ABY3", "field": "FM128", "fxp_fraction_bits": 40},
    },
}
SPU_PROFILES: dict[str, dict[str, Any]] = SPU_PROTOCOL_PROFILES["SEMI2K"]
"""The profiles of the default protocol (SEMI2K)."""


def spu_profiles_for(protocol: str) -> dict[str, dict[str, Any]]:
    """The SPU profiles of a job run under ``protocol`` (a copy); `ValueError` for an unknown one."""
    try:
        return {name: dict(runtime) for name, runtime in SPU_PROTOCOL_PROFILES[protocol].items()}
    except KeyError:
        raise ValueError(
            f"unknown SPU protocol {protocol!r}: use one of {', '.join(SPU_PROTOCOL_PROFILES)}"
        ) from None


def protocol_of(profiles: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The SPU protocol whose profiles ``profiles`` are exactly (runtime configs compared as strings),
    ``""`` for no SPU at all, or None when they are not one of `SPU_PROTOCOL_PROFILES`' sets.

    A party worker creates its SPU devices from the profiles its coordinator sends: a node accepts only
    these known sets, so that a coordinator cannot have its party's shares computed under another runtime
    (REF2K, SPU's plaintext reference protocol, would give every party the others' values)."""
    if not profiles:
        return ""

    def norm(p: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, str]]:
        return {str(k): {str(a): str(b) for a, b in dict(v).items()} for k, v in p.items()}

    given = norm(profiles)
    for protocol, known in SPU_PROTOCOL_PROFILES.items():
        if given == norm(known):
            return protocol
    return None


class PartyPorts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fed: int
    spu: dict[str, int]  # profile -> SPU link port
    host: str = "127.0.0.1"  # where the other parties reach it (a node's --host in distributed mode)
    tls_cert: str | None = None  # the node's TLS certificate (PEM; distributed mode with TLS, see worker.tls)


class WorkerSettings(BaseModel):
    """Everything a worker needs to start (written to a file only it and the coordinator read)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    party: str
    parties: dict[str, PartyPorts]  # in a fixed order: every party must list them identically
    party_dir: str
    scratch_dir: str | None = None  # the session's tmp/, work/ (a node's concurrent jobs); None: party_dir
    fd: int
    coordinator_pid: int
    log_level: str = "warning"
    spu_profiles: dict[str, dict[str, Any]] = SPU_PROFILES
    require_consent: bool = False  # a node's worker: acts on a job only after consenting to it itself


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1, localhost): such a node binds it alone."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
