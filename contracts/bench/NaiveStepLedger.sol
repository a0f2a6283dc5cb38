// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title NaiveStepLedger
/// @notice Benchmark baseline only, never deployed in production: one transaction per step, the whole
///         record stored on chain. `scripts/bench_anchoring.py` compares the Merkle-batch pipeline with it.
contract NaiveStepLedger {
    /// @notice The stored record of a step.
    mapping(bytes32 jobId => mapping(uint64 seq => bytes record)) public records;

    /// @notice A step record was stored.
    event StepStored(bytes32 indexed jobId, uint64 indexed seq, bytes32 recordHash);

    /// @notice The step was stored already.
    error StepAlreadyStored(bytes32 jobId, uint64 seq);

    /// @notice Store one step record (the naive way: the full canonical JSON in contract storage).
    function storeStep(bytes32 jobId, uint64 seq, bytes calldata record) external {
        if (records[jobId][seq].length != 0) revert StepAlreadyStored(jobId, seq);
        records[jobId][seq] = record;
        emit StepStored(jobId, seq, keccak256(record));
    }
}
