"""The coordinator's own key: read from ``SECUREFLOW_COORDINATOR_KEY_FILE``, checked against the registry.

The key signs every entry the coordinator puts on a node's queue (`secureflow.ledger.queue_signing`); the
nodes act only on entries signed by a holder of the registry's coordinator role. It is never taken from
the command line and never logged.
"""

from __future__ import annotations

from eth_account import Account
from web3.contract import Contract

from secureflow.api.coordinator.settings import CoordinatorSettings
from secureflow.ledger.contracts import RegistryClient
from secureflow.ledger.errors import ConfigurationError


def load_coordinator_key(settings: CoordinatorSettings, registry_contract: Contract) -> str:
    """The coordinator's key from ``SECUREFLOW_COORDINATOR_KEY_FILE``, checked to hold the coordinator role
    in the pinned registry (the nodes drop every entry it signs otherwise)."""
    path = settings.coordinator_key_file
    if path is None:
        raise ConfigurationError(
            "the coordinator has no key to sign the nodes' queue entries with",
            hint="set SECUREFLOW_COORDINATOR_KEY_FILE to a file holding its private key (0x + 64 hex)",
        )
    try:
        key = path.read_text(encoding="utf-8").strip()
        address = str(Account.from_key(key).address)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the coordinator key file {path} ({exc.strerror or type(exc).__name__})",
            hint="point SECUREFLOW_COORDINATOR_KEY_FILE at a readable file",
        ) from None
    except ValueError:
        raise ConfigurationError(
            f"the coordinator key file {path} holds no private key",
            hint="write the key as 0x + 64 hex digits on one line",
        ) from None
    registry = RegistryClient(registry_contract)
    if not registry.is_coordinator(address):
        raise ConfigurationError(
            f"{address} (SECUREFLOW_COORDINATOR_KEY_FILE) does not hold the coordinator role in the registry "
            f"{registry.address}: every node would drop the entries it signs",
            hint=f"the registry's admin grants it: secureflow members grant-role {address} coordinator",
        )
    return key
