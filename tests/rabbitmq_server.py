"""A rabbitmq-server node of a test's own (Debian's package, started from /usr/lib/rabbitmq/bin), stopped
and started again on the same port: a broker restart. The machine's shared RabbitMQ (5672, node
``rabbit@localhost``) is never touched.

Everything the node keeps is private to the test's folder: its node name
(``rabbit-test-<pid>-<n>@localhost``), AMQP and distribution ports (free ports below the ephemeral
range), its Mnesia database (durable queues and persistent messages survive the restart, as on a real
broker), logs, enabled-plugins file (no plugins), config and env files (empty: the machine's
/etc/rabbitmq files are not read) and Erlang cookie (``HOME`` is the test's folder). The node registers
with the machine's epmd (4369) under its own name; nothing else is shared. SIGTERM stops the node
cleanly (RabbitMQ traps it), which is what `stop` sends.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from tcp_proxy import _free_port_below_the_ephemeral_range

SERVER = Path(
    "/usr/lib/rabbitmq/bin/rabbitmq-server"
)  # not /usr/sbin's wrapper: that one wants user rabbitmq
_COUNT = itertools.count(1)


class RabbitMqServer:
    def __init__(self, workdir: Path) -> None:
        if not SERVER.exists():
            raise RuntimeError("rabbitmq-server is not installed (Debian package rabbitmq-server)")
        self.workdir = workdir
        self.node = f"rabbit-test-{os.getpid()}-{next(_COUNT)}@localhost"
        self.port = _free_port_below_the_ephemeral_range()
        self.dist_port = _free_port_below_the_ephemeral_range()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _env(self) -> dict[str, str]:
        w = self.workdir
        for sub in ("home", "mnesia", "log"):
            (w / sub).mkdir(parents=True, exist_ok=True)
        (w / "home").chmod(0o700)
        (w / "rabbitmq-env.conf").touch()
        (w / "enabled_plugins").write_text("[].\n")
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
        return {
            **keep,
            "HOME": str(w / "home"),  # the node's own Erlang cookie
            "RABBITMQ_CONF_ENV_FILE": str(w / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(w / "rabbitmq"),  # absent: defaults
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(w / "advanced.config"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_MNESIA_BASE": str(w / "mnesia"),
            "RABBITMQ_LOG_BASE": str(w / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(w / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(w / "plugins-expand"),
            "RABBITMQ_PID_FILE": str(w / "rabbitmq.pid"),
        }

    def start(self, timeout: float = 90.0) -> RabbitMqServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / "server.log", "ab") as out:
            self.proc = subprocess.Popen(
                [str(SERVER)],
                env=self._env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop takes the shell and the VM
            )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"rabbitmq-server did not start on port {self.port}: see {self.workdir}")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        """The AMQP listener answers a protocol header (it listens only once the broker is up)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"AMQP\x00\x00\x09\x01")
                return conn.recv(8).startswith(b"\x01\x00")  # a Connection.Start frame
        except OSError:
            return False

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)  # the node shuts down cleanly, then its shell exits
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        self._wait_vm_gone()

    def _wait_vm_gone(self, timeout: float = 60.0) -> None:
        """The Erlang VM (a child of the server's shell, which may exit first) is gone, its files free."""
        pid_file = self.workdir / "rabbitmq.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)

    def __enter__(self) -> RabbitMqServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
