"""`secureflow chain`: prints its dev accounts (marked as public test keys) and stops anvil on SIGTERM as it
does on Ctrl-C (systemd, containers and CI stop services with SIGTERM: no anvil may outlive the command)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

from eth_account import Account

from secureflow.ledger.devchain import DEV_PRIVATE_KEYS, free_port


def _answers(port: int) -> bool:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}",
        data=b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}',
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError):
        return False


def test_chain_prints_dev_accounts_and_sigterm_stops_anvil() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "secureflow.api", "chain", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "60"},
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # wait for the event: the last account line
            lines.append(line.rstrip("\n"))
            if line.startswith("e.g. export SECUREFLOW_DEPLOYER_KEY"):
                break
        output = "\n".join(lines)
        assert "PUBLIC test keys" in output
        for key in DEV_PRIVATE_KEYS:  # each key and address whole on one line, even at 60 columns
            assert any(key in line and Account.from_key(key).address in line for line in lines), key
        assert _answers(port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) in (0, 130)
        assert not _answers(port)  # anvil went with it
    finally:
        if proc.poll() is None:
            proc.kill()
