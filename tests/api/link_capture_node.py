"""``secureflow node`` with what its party receives from the other parties copied to a file (tests only).

Run as ``python link_capture_node.py <capture file> <secureflow node arguments…>``: the node's TLS tunnel
(`secureflow.compute.worker.tls`) is where every byte between two parties' workers passes in clear (the
SecretFlow and SPU links); each chunk a tunnel half reads from its TLS side, i.e. from another party's
node, is appended to the capture file before it goes to this party's worker. The node is otherwise the
real one (the same CLI, the same code): the consortium test scans the file for other parties' cells.
"""

from __future__ import annotations

import ssl
import sys
import threading

from secureflow.compute.worker import tls


def main() -> None:
    capture, args = sys.argv[1], sys.argv[2:]
    out = open(capture, "ab")  # noqa: SIM115 - open for the life of the node
    lock = threading.Lock()
    forward = tls._Half.data_received

    def data_received(self: tls._Half, data: bytes) -> None:
        transport = self.transport
        if transport is not None and isinstance(transport.get_extra_info("ssl_object"), ssl.SSLObject):
            with lock:
                out.write(data)
                out.flush()
        forward(self, data)

    tls._Half.data_received = data_received  # type: ignore[method-assign]

    from secureflow.api.cli.main import app

    app(args=args, prog_name="secureflow")


if __name__ == "__main__":
    main()
