"""The checked-in contract artifacts are current, Berlin-only, and loadable without node."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from secureflow.ledger.artifacts import ARTIFACTS_DIR, Artifact, load_artifact
from secureflow.ledger.compiler import (
    SOLC_VERSION,
    compile_contracts,
    solc_shim,
    source_files,
    standard_input,
)
from secureflow.ledger.errors import ToolchainError

OUR_CONTRACTS = ("AuditLedger", "ConsortiumRegistry", "Settlement")
# PUSH0 (Shanghai), BASEFEE (London), MCOPY, TLOAD, TSTORE (Cancun)
POST_BERLIN_OPCODES = {0x5F: "PUSH0", 0x48: "BASEFEE", 0x5E: "MCOPY", 0x5C: "TLOAD", 0x5D: "TSTORE"}


def strip_metadata(code: bytes) -> bytes:
    """Runtime code without the trailing CBOR metadata (its length is in the last two bytes)."""
    length = int.from_bytes(code[-2:], "big")
    assert 0 < length < len(code)
    return code[: -(length + 2)]


TERMINATORS = {0x00, 0x56, 0xF3, 0xFD, 0xFE, 0xFF}  # STOP JUMP RETURN REVERT INVALID SELFDESTRUCT
JUMPDEST = 0x5B


def opcodes(code: bytes) -> list[int]:
    """The executable opcodes of ``code``: PUSH1..PUSH32 immediates skipped, and so are bytes after a
    terminating instruction up to the next JUMPDEST (unreachable: solc puts data there, e.g. the
    32-byte constants it loads with CODECOPY)."""
    ops: list[int] = []
    reachable = True
    i = 0
    while i < len(code):
        op = code[i]
        if op == JUMPDEST:
            reachable = True
        if reachable:
            ops.append(op)
            reachable = op not in TERMINATORS
            i += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)
        else:
            i += 1
    return ops


@pytest.fixture(scope="module")
def fresh() -> dict[str, Artifact]:
    return compile_contracts()


def test_recompiling_gives_the_checked_in_artifacts(fresh: dict[str, Artifact]) -> None:
    assert sorted(fresh) == sorted(OUR_CONTRACTS), "only our contracts get artifacts, not OpenZeppelin's"
    assert sorted(path.stem for path in ARTIFACTS_DIR.glob("*.json")) == sorted(OUR_CONTRACTS)
    for name, artifact in fresh.items():
        stored = load_artifact(name)
        assert stored.abi == artifact.abi, f"{name}: ABI is stale, run python -m secureflow.ledger.compiler"
        assert stored.bytecode == artifact.bytecode, (
            f"{name}: bytecode is stale, run python -m secureflow.ledger.compiler"
        )
        assert stored.deployed_bytecode == artifact.deployed_bytecode, f"{name}: runtime bytecode is stale"
        assert stored.source_hash == artifact.source_hash
        assert (ARTIFACTS_DIR / f"{name}.json").read_text(encoding="utf-8") == artifact.to_json()


@pytest.mark.parametrize("name", OUR_CONTRACTS)
def test_artifacts_record_compiler_and_berlin(name: str) -> None:
    artifact = load_artifact(name)
    assert artifact.contract_name == name
    assert artifact.compiler.version.startswith(SOLC_VERSION + "+commit.")
    assert artifact.compiler.settings["evmVersion"] == "berlin"
    assert artifact.compiler.settings["optimizer"] == {"enabled": True, "runs": 200}
    metadata = json.loads(artifact.metadata)
    assert metadata["settings"]["evmVersion"] == "berlin"
    assert metadata["compiler"]["version"].startswith(SOLC_VERSION)
    assert artifact.bytecode.startswith("0x") and len(artifact.bytecode) > 100


@pytest.mark.parametrize("name", OUR_CONTRACTS)
def test_runtime_bytecode_has_no_post_berlin_opcode(name: str) -> None:
    code = strip_metadata(bytes.fromhex(load_artifact(name).deployed_bytecode[2:]))
    found = {POST_BERLIN_OPCODES[op] for op in opcodes(code) if op in POST_BERLIN_OPCODES}
    assert not found, f"{name} uses post-Berlin opcodes: {sorted(found)}"


def test_opcode_walker_skips_push_data() -> None:
    # PUSH2 0x5f48, then PUSH0: only the real PUSH0 counts
    assert opcodes(bytes([0x61, 0x5F, 0x48, 0x5F])) == [0x61, 0x5F]
    assert opcodes(bytes([0x7F, *([0x5C] * 32), 0x00])) == [0x7F, 0x00]
    # data after a terminator is skipped until a JUMPDEST; code after the JUMPDEST counts again
    assert opcodes(bytes([0x56, 0xFE, 0x5D, 0x5F, 0x5B, 0x5C])) == [0x56, 0x5B, 0x5C]


def test_shim_behaves_like_native_solc() -> None:
    shim = solc_shim()
    version = subprocess.run([str(shim), "--version"], capture_output=True, text=True, check=True, timeout=60)
    lines = version.stdout.splitlines()
    assert lines[0] == "solc, the solidity compiler commandline interface"
    assert lines[1].startswith(f"Version: {SOLC_VERSION}+commit.")
    sources = {k: v for k, v in source_files().items() if k.endswith("ConsortiumRegistry.sol")}
    result = subprocess.run(
        [str(shim), "--standard-json", "--allow-paths", "/tmp", "--base-path", str(Path.cwd())],
        input=json.dumps(standard_input(sources)),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    output = json.loads(result.stdout)  # stdout is nothing but the compiler's JSON
    assert not [e for e in output.get("errors", []) if e["severity"] == "error"]
    assert "ConsortiumRegistry" in output["contracts"]["contracts/src/ConsortiumRegistry.sol"]


def test_shim_refuses_imports_outside_its_roots() -> None:
    source = 'pragma solidity ^0.8.24;\nimport "../../../etc/passwd.sol";\ncontract X {}\n'
    result = subprocess.run(
        [str(solc_shim()), "--standard-json"],
        input=json.dumps(standard_input({"contracts/src/X.sol": source})),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    errors = json.loads(result.stdout)["errors"]
    assert any("not found" in e["message"].lower() for e in errors)


def test_load_artifact_needs_no_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("SECUREFLOW_NODE_MODULES", "/nonexistent")
    artifact = load_artifact("AuditLedger")
    assert any(item.get("name") == "verify" for item in artifact.abi)


def test_load_artifact_errors(tmp_path: Path) -> None:
    with pytest.raises(ToolchainError, match="missing"):
        load_artifact("AuditLedger", tmp_path)
    (tmp_path / "AuditLedger.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ToolchainError, match="malformed"):
        load_artifact("AuditLedger", tmp_path)
    with pytest.raises(ToolchainError):
        load_artifact("../secrets")


def test_opcode_check_catches_push0_from_a_shanghai_build() -> None:
    """Positive control: the same sources built for Shanghai do use PUSH0, and the walker sees it."""
    data = standard_input(source_files())
    data["settings"]["evmVersion"] = "shanghai"
    result = subprocess.run(
        [str(solc_shim()), "--standard-json"],
        input=json.dumps(data),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    output = json.loads(result.stdout)["contracts"]["contracts/src/ConsortiumRegistry.sol"][
        "ConsortiumRegistry"
    ]
    code = strip_metadata(bytes.fromhex(output["evm"]["deployedBytecode"]["object"]))
    assert 0x5F in opcodes(code)
