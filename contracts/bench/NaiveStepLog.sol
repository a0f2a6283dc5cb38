// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title NaiveStepLog
/// @notice Benchmark baseline only, never deployed in production: a ledger that keeps each step's audit
///         fields in one event per step, so that a job's audit trail can be read from the chain alone by
///         scanning logs (`eth_getLogs`). `scripts/bench_api.py` compares the API with that scan.
contract NaiveStepLog {
    /// @notice One step of a job: the fields of a page of the audit trail.
    event StepLogged(
        bytes32 indexed jobId,
        uint64 indexed seq,
        bytes32 recordHash,
        bytes32 leaf,
        string algorithm,
        uint64 startedAtMs,
        uint64 finishedAtMs
    );

    /// @notice What `logSteps` takes per step.
    struct Step {
        uint64 seq;
        bytes32 recordHash;
        bytes32 leaf;
        string algorithm;
        uint64 startedAtMs;
        uint64 finishedAtMs;
    }

    /// @notice Log a run of steps of one job (several per transaction, so the benchmark sets up quickly).
    function logSteps(bytes32 jobId, Step[] calldata steps) external {
        for (uint256 i = 0; i < steps.length; ++i) {
            Step calldata step = steps[i];
            emit StepLogged(
                jobId, step.seq, step.recordHash, step.leaf, step.algorithm, step.startedAtMs, step.finishedAtMs
            );
        }
    }
}
