"""Option types shared by CLI commands: the pinned deployment an auditor or member verifies against.

``secureflow verify`` and ``secureflow model verify`` pin the ledger the same way (a deployment file, or a
ledger address with its code hash, optionally its registry and chain id), so they declare the options once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

PinDeployment = Annotated[
    Path | None,
    typer.Option(
        help="pin this deployment file (from `secureflow deploy`: chain id, addresses, code hashes)"
    ),
]
PinLedger = Annotated[str | None, typer.Option(help="or pin the audit ledger by address (with --code-hash)")]
PinCodeHash = Annotated[
    str | None, typer.Option(help="keccak256 of the pinned ledger's runtime code (0x + 64 hex)")
]
PinRegistry = Annotated[
    str | None, typer.Option(help="with --ledger: the registry the ledger must be bound to")
]
PinChainId = Annotated[int | None, typer.Option(help="with --ledger: the chain id to expect")]

MetricsPort = Annotated[
    int | None,
    typer.Option(
        min=0,
        max=65_535,
        help="serve /metrics, /healthz and /readyz on this port (0: any free port; default: "
        "SECUREFLOW_METRICS_PORT, unset = not served)",
    ),
]
MetricsHost = Annotated[
    str | None,
    typer.Option(help="address to serve the metrics on (default: SECUREFLOW_METRICS_HOST or 127.0.0.1)"),
]


def metrics_overrides(port: int | None, host: str | None) -> dict[str, object]:
    """The settings a command's ``--metrics-port``/``--metrics-host`` override (none given: the env's)."""
    overrides: dict[str, object] = {}
    if port is not None:
        overrides["metrics_port"] = port
    if host is not None:
        overrides["metrics_host"] = host
    return overrides
