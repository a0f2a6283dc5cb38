"""A local dev chain configured like a GoQuorum/Besu network, for the demo and the tests.

`DevChain` runs anvil with ``--hardfork berlin --gas-price 0 --chain-id 1337`` on
a free 127.0.0.1 port, in its own process group so that stopping it never
leaves a stray node behind. `HardhatChain` runs hardhat's node (EDR) the same
way, set up to behave like Besu/GoQuorum where anvil does not: a failing
transaction is accepted and mined with status 0, never refused at send (see the
README's compatibility table). Given a ``state_path``, `DevChain` keeps its state
across runs (`secureflow up`): anvil loads it at start and dumps it, with every
block's state (the verifier asks for roles at past blocks), when it stops; the
dump goes to a side file that replaces the state file only once anvil exited
cleanly, so a crash never leaves a torn state file. The accounts are the well-known deterministic
test accounts of both tools: never use them on a real network.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from secureflow.ledger._internal.toolchain import anvil_binary, hardhat_cli, node_executable, node_modules
from secureflow.ledger.errors import NodeUnreachableError, ToolchainError

DEV_CHAIN_ID = 1337
DEV_MNEMONIC = "test test test test test test test test test test test junk"
# Private keys of anvil's deterministic accounts 0..4 (public test keys, never funded anywhere real).
DEV_PRIVATE_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733f9f19c4c8fa8fbfe",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((host, port)) == 0


def rpc_call(url: str, method: str, params: list[object] | None = None, timeout: float = 5.0) -> object:
    """One raw JSON-RPC call (used before web3 is set up and for anvil_* methods)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})  # noqa: S310 - the dev chain URL is our own http://127.0.0.1 address
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the dev chain URL is our own http://127.0.0.1 address
        reply = json.loads(response.read())
    if "error" in reply:
        raise NodeUnreachableError(f"{method} failed on {url}: {reply['error'].get('message')}")
    return reply["result"]


def _whole_json(path: Path) -> bool:
    """Whether ``path`` holds one whole JSON document (anvil's dump, checked before it replaces the last)."""
    try:
        with open(path, "rb") as handle:
            json.load(handle)
    except (OSError, ValueError):
        return False
    return True


@dataclass
class DevChain:
    """A running anvil node. Use as a context manager, or call `start` and `stop`."""

    port: int = field(default_factory=free_port)
    chain_id: int = DEV_CHAIN_ID
    accounts: int = 10
    block_time: float | None = None
    log_path: Path | None = None
    state_path: Path | None = None
    """anvil only: load the chain from this file if it exists, and save it there when stopped."""
    stop_timeout: float = 60.0
    """How long `stop` waits for the node to exit (and save its state) after SIGTERM before it kills it."""
    state_saved: bool = field(default=False, init=False)
    """Whether the last `stop` saved the state to ``state_path``."""
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    client = "anvil"
    """Which EVM client this is (``anvil`` or ``hardhat``): tests skip what only one client can do."""

    def command(self) -> list[str]:
        """The argv that starts the node."""
        args = [
            str(anvil_binary()),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--hardfork", "berlin",
            "--gas-price", "0",
            "--chain-id", str(self.chain_id),
            "--accounts", str(self.accounts),
            "--mnemonic", DEV_MNEMONIC,
        ]  # fmt: skip
        if self.block_time is not None:
            args += ["--block-time", str(self.block_time)]
        if self.state_path is not None:
            args += ["--preserve-historical-states", "--dump-state", str(self._partial_state())]
            if self.state_path.exists():
                args += ["--load-state", str(self.state_path)]
        return args

    def _partial_state(self) -> Path:
        """Where anvil dumps its state on exit, before `_keep_state` moves it over the state file."""
        assert self.state_path is not None  # noqa: S101 - only called with a state path
        return self.state_path.with_name(self.state_path.name + ".partial")

    def _keep_state(self, exited_cleanly: bool) -> None:
        """Move anvil's dump over the state file (atomically) if anvil exited cleanly; else drop the dump.
        `state_saved` says which."""
        self.state_saved = False
        if self.state_path is None:
            return
        partial = self._partial_state()
        if not partial.exists():
            return
        if not exited_cleanly or partial.stat().st_size == 0 or not _whole_json(partial):
            partial.unlink()  # possibly torn: the previous state file stays
            return
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        if self.state_path.exists():  # the last good state stays beside it until the next save
            os.replace(self.state_path, self.state_path.with_name(self.state_path.name + ".bak"))
        os.replace(partial, self.state_path)
        directory = os.open(self.state_path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self.state_saved = True

    def _spawn(self, args: list[str], log: int | IO[bytes], env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - fixed argv: our own executable and module, no shell
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )

    def start(self, timeout: float = 20.0) -> DevChain:
        if self.state_path is not None and self._partial_state().exists():
            self._partial_state().unlink()  # a dump an earlier run did not finish: never loaded
        args = self.command()
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._process = self._spawn(args, log, {**os.environ})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop()
                if port_in_use(self.port):
                    raise ToolchainError(
                        f"{self.client} could not start: port {self.port} on 127.0.0.1 is already in use",
                        hint="stop what listens there, or choose another port (secureflow chain --port N)",
                    )
                raise ToolchainError(f"{self.client} exited with code {code} on port {self.port}")
            try:
                rpc_call(self.rpc_url, "eth_chainId", timeout=1.0)
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        self.stop()
        raise NodeUnreachableError(f"{self.client} did not answer on {self.rpc_url} within {timeout:.0f}s")

    def stop(self, *, keep_state: bool = True) -> None:
        """Stop the node (SIGTERM to its process group); with a ``state_path``, its state is saved there
        unless ``keep_state`` is False (the state file is then left as it was)."""
        self._stop_process(keep_state)

    def _stop_process(self, keep_state: bool = True) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is not None:
            self._keep_state(keep_state and process.returncode == 0)
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=self.stop_timeout)  # anvil saves its state (if asked) before it exits
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        self._keep_state(keep_state and process.poll() == 0)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> DevChain:
        return self.start() if not self.running else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


HARDHAT_CONFIG = """// Written by secureflow.ledger.devchain.HardhatChain (hardhat's node set up like Besu).
module.exports = {{
  paths: {{ root: __dirname, sources: __dirname + "/contracts", cache: __dirname + "/cache" }},
  networks: {{
    hardhat: {{
      hardfork: "berlin",
      chainId: {chain_id},
      gasPrice: 0,
      minGasPrice: 0,
      // Besu/GoQuorum accept a failing transaction and mine it with status 0; hardhat's default
      // answers eth_sendRawTransaction with an error (while still mining it).
      throwOnTransactionFailures: false,
      // eth_call/eth_estimateGas answer a revert with an error carrying the revert data, as Besu does.
      throwOnCallFailures: true,
      accounts: {{ mnemonic: "{mnemonic}", count: {accounts} }},
      mining: {mining},
    }},
  }},
}};
"""


@dataclass
class HardhatChain(DevChain):
    """hardhat's node (EDR, from the pinned npm ``hardhat``) set up like Besu/GoQuorum.

    Hardfork ``berlin``, chain id 1337, gas price 0 (``eth_gasPrice`` still answers 8 gwei: send your
    own), failing transactions mined with status 0 (``throwOnTransactionFailures: false``), the same
    mnemonic (so the same dev keys) as anvil. The config is written to a private temporary folder at
    start; the CLI runs from the project root (hardhat refuses a non-local installation). No
    ``anvil_*`` methods (``hardhat_mine``, ``hardhat_setBalance``, ``hardhat_dropTransaction``
    instead) and no reorg method.
    """

    client = "hardhat"
    _config_dir: Path | None = field(default=None, init=False, repr=False)

    def command(self) -> list[str]:
        self._config_dir = Path(tempfile.mkdtemp(prefix="secureflow-hardhat-"))
        mining = (
            "{ auto: true, interval: 0 }"
            if self.block_time is None
            else f"{{ auto: false, interval: {round(self.block_time * 1000)} }}"
        )
        config = self._config_dir / "hardhat.config.js"
        config.write_text(
            HARDHAT_CONFIG.format(
                chain_id=self.chain_id, mnemonic=DEV_MNEMONIC, accounts=self.accounts, mining=mining
            )
        )
        return [
            node_executable(), str(hardhat_cli()),
            "--config", str(config),
            "node",
            "--hostname", "127.0.0.1",
            "--port", str(self.port),
        ]  # fmt: skip

    def _spawn(self, args: list[str], log: int | IO[bytes], env: dict[str, str]) -> subprocess.Popen[bytes]:
        env = {**env, "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true"}
        return subprocess.Popen(  # noqa: S603 - fixed argv: node and hardhat's CLI, no shell
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=node_modules().parent,  # hardhat resolves itself from the working directory
        )

    def stop(self, *, keep_state: bool = True) -> None:
        self._stop_process(keep_state)
        config_dir, self._config_dir = self._config_dir, None
        if config_dir is not None:
            shutil.rmtree(config_dir, ignore_errors=True)
