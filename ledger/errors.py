"""The exception hierarchy of `ledger`: one root, each error saying what to do.

Every error carries a ``hint`` (the action that fixes it) so that the CLI and
the API can show it without guessing. Messages never contain keys, raw data
or storage secrets.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Root of every error raised by the `ledger` package."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        if hint is not None:
            self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        message = super().__str__()
        return f"{message} ({self.hint})" if self.hint else message


class ConfigurationError(LedgerError):
    """A setting is missing or invalid."""

    hint = "check the SECUREFLOW_* environment variables"


class ToolchainError(LedgerError):
    """The Solidity compiler or the dev chain binary is missing or failed."""

    hint = "run scripts/bootstrap.sh to install the pinned npm toolchain"


class CompilationError(ToolchainError):
    """solc rejected the contract sources."""

    hint = "fix the Solidity error shown above, then run `secureflow contracts compile`"


class ChainError(LedgerError):
    """Something went wrong talking to the chain."""


class NodeUnreachableError(ChainError):
    """The JSON-RPC endpoint does not answer."""

    hint = "start the node or point SECUREFLOW_RPC_URL at a reachable JSON-RPC endpoint"


class WrongChainError(ChainError):
    """The node serves a different chain id than configured or deployed to."""

    hint = "point SECUREFLOW_RPC_URL at the right network or fix SECUREFLOW_CHAIN_ID"


class ContractNotDeployedError(ChainError):
    """No contract code at the address the deployment file names."""

    hint = "deploy the contracts with `secureflow deploy` and use the deployment file it writes"


class DeploymentFileError(ChainError):
    """The deployment file is missing, unreadable or for another chain."""

    hint = "run `secureflow deploy` to write a deployment file, or set SECUREFLOW_DEPLOYMENT"


class ChainMismatchError(ChainError):
    """A database and deployment describe another chain than the node serves (or a later state of it)."""

    hint = "point SECUREFLOW_RPC_URL at the chain this database was made on, or start with a new database"


class TransactionError(ChainError):
    """A transaction could not be sent or did not succeed."""


class OutOfGasError(TransactionError):
    """The transaction used all the gas it was given."""

    hint = "raise the gas limit (SECUREFLOW_GAS_LIMIT_MULTIPLIER) or split the work into smaller batches"


class NonceTooLowError(TransactionError):
    """The nonce of a signed transaction was already used on chain."""

    hint = "resync the sender's nonce (it happens when another tool sends from the same key) and re-sign"


class TransactionTimeoutError(TransactionError):
    """No receipt arrived within the timeout; the transaction may still be mined."""

    hint = "check the node is producing blocks; the transaction is kept and will be re-checked"


class ContractRevertedError(TransactionError):
    """The contract rejected the call with a (decoded) custom error."""

    hint = "the contract refused the operation: see the error name and arguments"

    def __init__(
        self, message: str, *, error_name: str | None = None, error_args: tuple[object, ...] = ()
    ) -> None:
        self.error_name = error_name
        self.error_args = error_args
        super().__init__(message)


class ReadOnlyClientError(LedgerError):
    """A write was asked of a contract client built without a sender."""


class StoreError(LedgerError):
    """The ledger database failed or holds unexpected data."""

    hint = "check SECUREFLOW_DATABASE_URL and run `secureflow db upgrade`"


class StoreMissingError(StoreError):
    """A command that reads the ledger database was pointed at one that does not exist or is empty."""

    hint = (
        "point --database-url (or SECUREFLOW_DATABASE_URL) at the ledger's database, e.g. the one "
        "`secureflow up` prints; `secureflow db upgrade` creates a new one"
    )


class StoreUnavailableError(StoreError):
    """The ledger database cannot be reached or opened."""

    hint = (
        "start the database server (or fix the path), check SECUREFLOW_DATABASE_URL "
        "(host, port, database name, credentials), then retry"
    )


class StoreNotFoundError(StoreError):
    """A job, record or batch the caller named does not exist in the ledger store (HTTP 404)."""

    hint = "check the id; list what exists with `secureflow job status` or GET /v1/jobs"


class UnknownJobError(StoreNotFoundError):
    """No job with this id in the ledger store."""

    hint = "create the job first (POST /v1/jobs or `secureflow job submit`), or check the job id"


class UnknownRecordError(StoreNotFoundError):
    """No step record with this id (or job id and sequence number)."""

    hint = "check the job id and step sequence number; list the job's steps with GET /v1/jobs/{job_id}/steps"


class UnknownBatchError(StoreNotFoundError):
    """No anchoring batch with this id."""

    hint = "check the batch id; batches are created by the batcher from pending records"


class StoreConflictError(StoreError):
    """The write contradicts what the ledger store already holds (HTTP 409)."""

    hint = "read the current state and retry with a consistent request"


class DuplicateJobError(StoreConflictError):
    """A job with this id already exists."""

    hint = "use a new job id, or read the existing job with GET /v1/jobs/{job_id}"


class RecordConflictError(StoreConflictError):
    """A different step record already exists under the same (job id, sequence number)."""

    hint = (
        "a step record is immutable once accepted: resend the identical record (idempotent), "
        "or record the new step under the next sequence number"
    )


class InvalidStateError(StoreConflictError):
    """The job, record or batch is not in a state that allows this change."""

    hint = "read its current status first; only the documented transitions are allowed"


class BatchConflictError(StoreConflictError):
    """A batch with this id or Merkle root already exists."""

    hint = "build the batch from the currently pending records; each root is anchored once"
