"""Why the nodes run their own TLS in front of the SecretFlow/SPU links (`secureflow.compute.worker.tls`).

Measured on the installed secretflow-lite / spu, with real brpc links and certificates made at test time:
SecretFlow's ``tls_config`` for the ``brpc_link`` cross-silo backend never switches TLS on, and SPU's
link TLS (``enable_ssl`` with client verification) still serves plain TCP on the same port, where a
process holding no certificate pushes a message that the party takes as its peer's. If a later version
fixes either, these tests fail and say so: then the library's own TLS can be reconsidered.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from tls_probe import refused as _refused

from secureflow.compute.worker.engine import free_ports
from secureflow.compute.worker.tls import TlsIdentity, TlsTunnel, fingerprint, listen_socket, make_identity


@pytest.fixture(scope="module")
def ids(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TlsIdentity]:
    root = tmp_path_factory.mktemp("tls-ids")
    return {name: make_identity(root / name, name) for name in ("alice", "bob", "mallory")}


def test_a_made_identity_keeps_its_key_private_and_pins_by_fingerprint(ids: dict[str, TlsIdentity]) -> None:
    alice = ids["alice"]
    assert alice.key_path.stat().st_mode & 0o777 == 0o600
    assert alice.key_path.parent.stat().st_mode & 0o777 == 0o700
    assert alice.fingerprint == fingerprint(alice.cert_path.read_text()) and len(alice.fingerprint) == 64
    assert "PRIVATE" not in json.dumps(alice.public())  # what the node sends: certificate and fingerprint
    assert len({i.fingerprint for i in ids.values()}) == 3


def test_secretflow_s_brpc_link_tls_config_leaves_the_cross_silo_link_plain(
    ids: dict[str, TlsIdentity],
) -> None:
    """``sf.init(tls_config=...)`` reaches `BrpcLinkProxy`, which fills the SSL options but not
    ``enable_ssl``; yacl's brpc factory reads the options only when ``enable_ssl`` is set."""
    from secretflow.distributed.fed.proxy.brpc_link.brpc_link import BrpcLinkProxy

    alice = ids["alice"]
    tls = {"cert": str(alice.cert_path), "key": str(alice.key_path), "ca_cert": str(ids["bob"].cert_path)}
    proxy = BrpcLinkProxy({"alice": "127.0.0.1:1", "bob": "127.0.0.1:2"}, "alice", "job", tls, {})
    desc: Any = proxy._desc
    assert desc.server_ssl_opts.cert.certificate_path == str(alice.cert_path)
    assert desc.enable_ssl is False


def _links(ids: dict[str, TlsIdentity], bundle: Path) -> tuple[Any, Any, int]:
    import spu.libspu.link as link

    ports = free_ports(2)
    out: dict[str, Any] = {}

    def make(rank: int, name: str) -> None:
        desc = link.Desc()
        desc.add_party("alice", f"127.0.0.1:{ports[0]}")
        desc.add_party("bob", f"127.0.0.1:{ports[1]}")
        desc.connect_retry_times, desc.connect_retry_interval_ms, desc.recv_timeout_ms = 60, 200, 20_000
        for opts in (desc.server_ssl_opts, desc.client_ssl_opts):
            opts.cert.certificate_path = str(ids[name].cert_path)
            opts.cert.private_key_path = str(ids[name].key_path)
            opts.verify.ca_file_path = str(bundle)
            opts.verify.verify_depth = 1
        desc.enable_ssl = True
        out[name] = link.create_brpc(desc, rank)

    threads = [threading.Thread(target=make, args=(r, n)) for r, n in enumerate(("alice", "bob"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out["alice"], out["bob"], ports[1]


def test_spu_link_tls_refuses_a_foreign_certificate_but_serves_plain_tcp(
    ids: dict[str, TlsIdentity], tmp_path: Path
) -> None:
    bundle = tmp_path / "parties.pem"
    bundle.write_text(ids["alice"].cert_pem + ids["bob"].cert_pem)
    alice, bob, bob_port = _links(ids, bundle)
    try:
        alice.send(1, b"from alice")
        assert bob.recv(0) == b"from alice"  # mutual TLS between the parties works
        assert _refused("127.0.0.1", bob_port, ids["mallory"])  # a TLS client with another certificate
        assert not _refused("127.0.0.1", bob_port, None)  # plain TCP: brpc answers HTTP
        # ...but no certificate at all, in plain TCP: a message "from alice" that bob receives
        key = "root:P2P-2:0->1\x01\x022"  # the next point-to-point message alice would send bob
        body = {"sender_rank": 0, "key": key, "value": base64.b64encode(b"mallory's").decode()}
        conn = http.client.HTTPConnection("127.0.0.1", bob_port, timeout=20)
        conn.request("POST", "/org.interconnection.link.ReceiverService/Push", json.dumps(body))
        assert conn.getresponse().status == 200
        conn.close()
        assert bob.recv(0) == b"mallory's"
    finally:  # a link stops together with its peer (yacl waits for the peers' stop): both at once
        stops = [threading.Thread(target=lk.stop_link, daemon=True) for lk in (alice, bob)]
        for t in stops:
            t.start()
        for t in stops:
            t.join(30.0)


def test_the_tunnel_admits_only_the_pinned_peer(ids: dict[str, TlsIdentity]) -> None:
    """The node's tunnel in front of a loopback service: bob's side takes alice's certificate only; a
    plain TCP client and a client with its own certificate fail the handshake and never reach it."""
    inner = socket.socket()
    inner.bind(("127.0.0.1", 0))
    inner.listen(8)
    reached: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = inner.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(100)
                reached.append(data)
                conn.sendall(b"echo:" + data)

    threading.Thread(target=serve, daemon=True).start()
    bob_tunnel = TlsTunnel(ids["bob"], "b" * 32)
    alice_tunnel = TlsTunnel(ids["alice"], "a" * 32)
    public = listen_socket("127.0.0.1")
    port = int(public.getsockname()[1])
    try:
        bob_tunnel.serve_inbound(public, int(inner.getsockname()[1]), {"alice": ids["alice"].cert_pem})
        local = alice_tunnel.serve_outbound(ids["bob"].cert_pem, "127.0.0.1", port)
        with socket.create_connection(("127.0.0.1", local), timeout=30) as c:
            c.sendall(b"hello")
            assert c.recv(100) == b"echo:hello"
        assert _refused("127.0.0.1", port, ids["mallory"]) and _refused("127.0.0.1", port, None)
        assert reached == [b"hello"]
        # alice's outbound side pins bob: a server with another certificate is not connected to
        mallory_tunnel = TlsTunnel(ids["mallory"], "c" * 32)
        try:
            fake = listen_socket("127.0.0.1")
            mallory_tunnel.serve_inbound(fake, int(inner.getsockname()[1]), {"alice": ids["alice"].cert_pem})
            to_fake = alice_tunnel.serve_outbound(
                ids["bob"].cert_pem, "127.0.0.1", int(fake.getsockname()[1])
            )
            with socket.create_connection(("127.0.0.1", to_fake), timeout=30) as c:
                c.sendall(b"secret")
                assert c.recv(100) == b""
            assert reached == [b"hello"]
        finally:
            mallory_tunnel.close()
    finally:
        bob_tunnel.close()
        alice_tunnel.close()
        inner.close()
