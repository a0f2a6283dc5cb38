"""A node trusts nothing but coordinator signatures and the chain: attacks on its Redis queue.

One pair of real `secureflow node` processes (alice, bob) pinned to the session's anvil deployment, and
one distributed engine that signs as a coordinator holding the registry's COORDINATOR_ROLE, serve the
whole module (warm workers). Each attack writes straight to a node's queue, as anyone with write access
to Redis could, an entry that would stop the node's session worker (``stop``) or makes it act on a job.
The queue is FIFO: once a signed ping sent after the attack is answered, the node has handled the attack
entry; its worker is the same process and its log says why the entry was dropped. A step request of a
job that is not open on chain with the node's consent is refused by the node, never seen by its worker,
and nothing is written on chain.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from cf_helpers import vertical_data
from dist_nodes import REDIS_URL, Nodes
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from stack import ALICE, BOB, LedgerStack, create_job_on_chain, salt_of

from secureflow.compute.consents import request_consents
from secureflow.compute.errors import ConsentRefusedError, NodeRefusedError
from secureflow.compute.models import write_meta
from secureflow.compute.policy import PartyPolicy, write_policy
from secureflow.compute.runner import run_job
from secureflow.compute.worker.engine import Engine
from secureflow.compute.worker.link import RedisSession, encode, inbound_key
from secureflow.compute.worker.node import Node, Session
from secureflow.compute.worker.protocol import PartyPorts
from secureflow.compute.worker.tls import TlsError, listen_socket, make_identity
from secureflow.compute.worker.trust import QueueGuard, member_address
from secureflow.ledger import node_authority
from secureflow.ledger.chain import TransactionSender
from secureflow.ledger.consent import sign_consent
from secureflow.ledger.contracts import JobStatus
from secureflow.ledger.deploy import write_deployment
from secureflow.ledger.devchain import DEV_CHAIN_ID
from secureflow.ledger.node_authority import open_authority
from secureflow.ledger.nonces import ChainNonceSource
from secureflow.ledger.queue_signing import REPLY_DOMAIN, entry_signer, sign_entry
from secureflow.ledger.recorder import OutboxRecorder
from secureflow.ledger.records import job_id_for, new_job_salt, new_job_secret

PARTIES = ("alice", "bob")


@pytest.fixture(scope="module")
def rds() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    yield client
    client.close()


@pytest.fixture(scope="module")
def pinned(ledger_stack: LedgerStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pin") / "deployment.json"
    write_deployment(ledger_stack.deployment, path)
    return path


@pytest.fixture(scope="module")
def coordinator(ledger_stack: LedgerStack) -> LocalAccount:
    account: LocalAccount = Account.create()
    ledger_stack.registry().grant_role("coordinator", account.address)
    return account


@pytest.fixture(scope="module")
def tnodes(
    tmp_path_factory: pytest.TempPathFactory, rds: redis.Redis, ledger_stack: LedgerStack, pinned: Path
) -> Iterator[Nodes]:
    n = Nodes(
        tmp_path_factory.mktemp("tnodes"),
        f"sftest-trust-{uuid.uuid4().hex[:12]}",
        (ledger_stack.rpc_url, pinned),
    )
    registry = ledger_stack.registry()
    for party in PARTIES:  # the registry's admin adds each node's member key (made here, as the node
        # would) first: a node pinned to a deployment starts only as an active member of its registry
        registry.register_member(to_checksum_address(member_address(n.dir(party))))
        n.start(party)
    try:
        n.wait_up(rds, PARTIES)
        yield n
    finally:
        n.stop_all()
        keys = list(rds.scan_iter(f"{n.prefix}:*"))
        if keys:
            rds.delete(*keys)


@pytest.fixture(scope="module")
def tengine(
    tnodes: Nodes, coordinator: LocalAccount, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    eng = Engine(
        PARTIES,
        tmp_path_factory.mktemp("tcoord"),
        launcher="distributed",
        redis_url=REDIS_URL,
        redis_prefix=tnodes.prefix,
        step_timeout=300.0,
        start_timeout=180.0,
        node_timeout=5.0,
        coordinator_key="0x" + bytes(coordinator.key).hex(),
        party_addresses={p: member_address(tnodes.dir(p)) for p in PARTIES},  # replies signed by them
    )
    eng.start()
    try:
        yield eng
    finally:
        eng.shutdown()


def _nonce(engine: Engine, party: str) -> str:
    """``party``'s node's own number for the engine's session (from its signed ports reply)."""
    assert engine.session is not None
    return engine.session.node_nonces[party]


def _entry(session: str, party: str, op: str, ctr: int, **fields: Any) -> dict[str, Any]:
    return {"session": session, "op": op, "exp": time.time() + 120, "party": party, "ctr": ctr, **fields}


def _push(rds: redis.Redis, nodes: Nodes, party: str, entry: dict[str, Any]) -> None:
    rds.rpush(inbound_key(nodes.prefix, party), json.dumps(entry))


def _session(engine: Engine) -> str:
    assert engine.session is not None
    return engine.session.session


def _handled_and_alive(engine: Engine, pids: dict[str, int]) -> None:
    """A signed ping after the attack is answered by the same workers (the attack changed nothing)."""
    replies = engine.ping(timeout=30)
    assert {p: r["pid"] for p, r in replies.items()} == pids
    assert engine.healthy and all(w.alive() for w in engine.workers.values())


def _pids(engine: Engine) -> dict[str, int]:
    engine.ensure_healthy()
    return {p: w.pid for p, w in engine.workers.items()}


def test_an_unsigned_entry_is_dropped(tengine: Engine, tnodes: Nodes, rds: redis.Redis) -> None:
    pids, session = _pids(tengine), _session(tengine)
    _push(rds, tnodes, "alice", _entry(session, "alice", "stop", 10**6, node_nonce=_nonce(tengine, "alice")))
    _handled_and_alive(tengine, pids)
    assert f"dropped a stop entry of session {session[:8]}: no valid coordinator signature" in (
        tnodes.log("alice").read_text()
    )


def test_an_entry_signed_by_a_non_coordinator_is_dropped(
    tengine: Engine, tnodes: Nodes, rds: redis.Redis
) -> None:
    pids, session = _pids(tengine), _session(tengine)
    stranger: LocalAccount = Account.create()
    entry = _entry(session, "alice", "stop", 10**6, node_nonce=_nonce(tengine, "alice"))
    _push(rds, tnodes, "alice", sign_entry(entry, stranger.key))
    _handled_and_alive(tengine, pids)
    log = tnodes.log("alice").read_text()
    assert f"signed by {stranger.address.lower()}, which holds no coordinator role" in log


def test_a_coordinator_entry_replayed_to_another_party_or_session_or_again_is_dropped(
    tengine: Engine, tnodes: Nodes, rds: redis.Redis, coordinator: LocalAccount
) -> None:
    pids, session = _pids(tengine), _session(tengine)
    assert tengine.session is not None
    used = tengine.session._ctr  # a counter alice's node has seen in this session already
    nonce = _nonce(tengine, "alice")  # alice's node's number for the session: these reach its checks
    # signed for bob, pushed onto alice's queue
    to_bob = _entry(session, "bob", "stop", used + 10**6, node_nonce=nonce)
    _push(rds, tnodes, "alice", sign_entry(to_bob, coordinator.key))
    # signed for another session, relabelled with this one
    other = sign_entry(
        _entry(uuid.uuid4().hex, "alice", "stop", used + 10**6, node_nonce=nonce), coordinator.key
    )
    _push(rds, tnodes, "alice", {**other, "session": session})
    # signed for this session and party, but with a counter the node has seen (a replay)
    _push(
        rds,
        tnodes,
        "alice",
        sign_entry(_entry(session, "alice", "stop", 1, node_nonce=nonce), coordinator.key),
    )
    # signed for this session and party with a fresh counter, but without the node's own session number
    # (an entry copied before the node restarted, whose counters it then no longer remembers)
    stale = _entry(session, "alice", "stop", used + 2 * 10**6, node_nonce="0" * 32)
    _push(rds, tnodes, "alice", sign_entry(stale, coordinator.key))
    _handled_and_alive(tengine, pids)
    log = tnodes.log("alice").read_text()
    prefix = f"dropped a stop entry of session {session[:8]}: "
    assert prefix + "addressed to another party" in log
    assert prefix + "no valid coordinator signature" in log
    assert prefix + "counter 1 already seen in this session (a replay)" in log
    assert prefix + "not this node's session number" in log


def _manifest(engine: Engine, dataset: str, out: str) -> dict[str, Any]:
    return {
        "name": "trust",
        "parties": [{"name": p, "address": engine.addresses[p]} for p in PARTIES],
        "datasets": {"raw": {p: dataset for p in PARTIES}},
        "models": {},
        "steps": [
            {
                "algorithm": "psi",
                "params": {"key": "id"},
                "inputs": {"table": "raw"},
                "outputs": {"table": "j"},
                "save": {"table": f"{out}/j.csv"},
            }
        ],
    }


def _put(nodes: Nodes, name: str) -> str:
    alice, bob = vertical_data(60, seed=3)
    for party, df in (("alice", alice), ("bob", bob)):
        nodes.put(party, name, df)
    return name


def test_a_job_without_on_chain_consent_is_refused_by_the_nodes(
    tengine: Engine, tnodes: Nodes, ledger_stack: LedgerStack, recorder: OutboxRecorder
) -> None:
    w3 = ledger_stack.client().w3
    head = w3.eth.block_number
    pids = _pids(tengine)
    manifest = _manifest(tengine, _put(tnodes, "unconsented.csv"), "out/unconsented")
    with pytest.raises(NodeRefusedError, match="does not exist on chain"):
        run_job(tengine, manifest, recorder)
    # a signed step request of a job that is not on chain never reaches the worker either
    job = "0x" + "ab" * 32
    reply = tengine.broadcast({"alice": {"op": "run_step", "job_id": job, "seq": 0}}, timeout=30)["alice"]
    assert (reply["ok"], reply["error_class"]) == (False, "NodeRefusedError")
    assert f"job {job} does not exist on chain" in reply["message"]
    _handled_and_alive(tengine, pids)
    for party in PARTIES:
        assert not (tnodes.dir(party) / "data" / "out" / "unconsented").exists()
        assert "refused open_job: job 0x" in tnodes.log(party).read_text()
    assert w3.eth.block_number == head  # nothing was written on chain


def _open_on_chain(
    stack: LedgerStack, nodes: Nodes, engine: Engine, manifest: dict[str, Any]
) -> dict[str, str]:
    """Register the nodes' members and create the job with both consents (alice creates it)."""
    from secureflow.compute.manifest import JobManifest

    keys = {p: (nodes.dir(p) / "secrets" / "member.key").read_text().strip() for p in PARTIES}
    registry = stack.registry()
    for party in PARTIES:
        if not registry.is_active_member(engine.addresses[party]):
            registry.register_member(engine.addresses[party])
    secret, salt = new_job_secret(), new_job_salt()
    manifest_hash = JobManifest.parse(manifest).manifest_hash(secret)
    creator = engine.addresses["alice"]
    job_id = job_id_for(creator, manifest_hash, salt)
    client = stack.client()
    ledger = stack.ledger(client, TransactionSender(client, keys["alice"], ChainNonceSource(client.w3)))
    raw_id, raw_hash = bytes.fromhex(job_id[2:]), bytes.fromhex(manifest_hash[2:])
    ledger.create_job(
        manifest_hash=raw_hash,
        salt=bytes.fromhex(salt[2:]),
        parties=[engine.addresses[p] for p in PARTIES],
        consents=[sign_consent(keys[p], DEV_CHAIN_ID, ledger.address, raw_id, raw_hash) for p in PARTIES],
    )
    assert ledger.get_job(raw_id).status == JobStatus.OPEN
    return {"job_id": job_id, "salt": salt, "creator": creator, "job_secret": secret}


def test_a_job_open_on_chain_runs_on_the_checking_nodes_once_each_worker_consented_itself(
    tengine: Engine, tnodes: Nodes, ledger_stack: LedgerStack, recorder: OutboxRecorder
) -> None:
    manifest = _manifest(tengine, _put(tnodes, "consented.csv"), "out/consented")
    opened = _open_on_chain(ledger_stack, tnodes, tengine, manifest)
    # consents given on chain, but not by these sessions' workers (a task taken over by a new
    # coordinator): each worker refuses to act on the job before it has checked and consented itself
    with pytest.raises(ConsentRefusedError, match="has not consented to job"):
        run_job(tengine, manifest, recorder, **opened)
    assert not any((tnodes.dir(p) / "data" / "out" / "consented").exists() for p in PARTIES)

    for party, other in (("alice", "bob"), ("bob", "alice")):  # each may show the other the PSI result
        write_policy(tnodes.dir(party), PartyPolicy(reveal={"psi": (tengine.addresses[other],)}))
    request_consents(
        tengine,
        manifest,
        job_id=opened["job_id"],
        creator=opened["creator"],
        salt=opened["salt"],
        job_secret=opened["job_secret"],
        parties=[tengine.addresses[p] for p in PARTIES],
        chain_id=DEV_CHAIN_ID,
        ledger=ledger_stack.deployment.address_of("AuditLedger"),
    )
    result = run_job(tengine, manifest, recorder, **opened)
    assert result.succeeded, (result.error_class, result.error_message)
    for party in PARTIES:
        assert (tnodes.dir(party) / "data" / "out" / "consented" / "j.csv").is_file()


def test_a_revoked_coordinator_is_refused_once_the_cache_lapses(
    ledger_stack: LedgerStack, pinned: Path
) -> None:
    account: LocalAccount = Account.create()
    registry = ledger_stack.registry()
    registry.grant_role("coordinator", account.address)
    fresh = open_authority(ledger_stack.rpc_url, pinned, cache_seconds=0.0)
    cached = open_authority(ledger_stack.rpc_url, pinned, cache_seconds=3600.0)
    assert fresh.is_coordinator(account.address) and cached.is_coordinator(account.address)
    registry.revoke_role("coordinator", account.address)
    assert not fresh.is_coordinator(account.address)
    assert cached.is_coordinator(account.address)  # within its window the answer is reused


def test_a_flood_of_new_signers_does_not_grow_the_role_cache(
    ledger_stack: LedgerStack, pinned: Path, coordinator: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each entry signed by a new key costs one role lookup; the answers a node keeps are bounded (the
    bound lowered to 8 here, 1024 in production), the oldest signers forgotten first."""
    monkeypatch.setattr(node_authority, "MAX_CACHED_SIGNERS", 8)
    authority = open_authority(ledger_stack.rpc_url, pinned, cache_seconds=3600.0)
    assert authority.is_coordinator(coordinator.address)
    for _ in range(20):
        assert not authority.is_coordinator(Account.create().address)
    assert len(authority._coordinators) == 8
    assert coordinator.address.lower() not in authority._coordinators  # forgotten, asked again next time
    assert authority.is_coordinator(coordinator.address)


def test_the_guard_refuses_a_policy_s_unlisted_coordinator_and_a_session_that_is_not_the_job_s(
    ledger_stack: LedgerStack, pinned: Path, coordinator: LocalAccount
) -> None:
    authority = open_authority(ledger_stack.rpc_url, pinned)
    other = Account.create().address
    narrowed = QueueGuard("alice", ALICE, authority, coordinators=[other])
    entry = sign_entry(_entry(uuid.uuid4().hex, "alice", "ping", 1), coordinator.key)
    assert "not a coordinator this node's policy lists" in str(narrowed.admit(entry))
    assert QueueGuard("alice", ALICE, authority).admit(entry) is None

    tag = int(uuid.uuid4().int % 10**9)
    salt = salt_of(tag)
    manifest_hash = "0x" + uuid.uuid4().hex * 2
    job_id = job_id_for(ALICE, manifest_hash, salt)
    proposed_hash = "0x" + uuid.uuid4().hex * 2
    proposed = job_id_for(ALICE, proposed_hash, salt)
    create_job_on_chain(ledger_stack, job_id, manifest_hash, salt)  # Open, both consented
    create_job_on_chain(ledger_stack, proposed, proposed_hash, salt, consenting=1)  # Proposed
    guard = QueueGuard("alice", ALICE, authority)
    step = {"op": "run_step", "job_id": job_id}
    table = ("alice", "bob")
    assert guard.job_refusal(step, table, {"alice": ALICE, "bob": BOB}) is None
    assert "not job" in str(guard.job_refusal(step, table, {"alice": ALICE, "bob": other}))
    assert "not named" in str(guard.job_refusal(step, ("alice", "carol"), {"alice": ALICE, "bob": BOB}))
    stranger = QueueGuard("alice", other, authority)
    assert "has not consented" in str(stranger.job_refusal(step, table, {"alice": other, "bob": BOB}))
    assert "not open on chain" in str(guard.job_refusal({"op": "run_step", "job_id": proposed}, table, {}))


def test_the_coordinator_takes_a_party_s_replies_only_from_its_own_node() -> None:
    """Whoever can write Redis could answer for a party: a forged ``ports`` reply would point every other
    party's links at a host of its choice. A session that knows each party's member address takes a
    reply only signed by that member's key (its node's), each counter once; the rest is dropped."""
    alice_key, mallory_key = "0x" + "a1" * 32, "0x" + "66" * 32
    alice = Account.from_key(alice_key).address
    client = redis.Redis.from_url(REDIS_URL)
    hub = RedisSession(client, ["alice", "bob"], party_addresses={"alice": alice, "bob": ALICE})

    def reply(ctr: int, host: str, key: str | None) -> bytes:
        entry = {"session": hub.session, "party": "alice", "op": "ports", "ctr": ctr, "host": host,
                 "ports": {"fed": 1, "spu": {}}}  # fmt: skip
        return encode(entry if key is None else sign_entry(entry, key, REPLY_DOMAIN))

    hub._take(reply(1, "10.66.66.66", None))  # unsigned
    hub._take(reply(1, "10.66.66.66", mallory_key))  # signed by someone else
    hub._take(encode(sign_entry(json.loads(reply(1, "10.66.66.66", None)), alice_key)))  # a queue-entry sig
    assert list(hub.buffers["alice"]) == [] and hub.dropped_replies == 3
    hub._take(reply(1, "127.0.0.2", alice_key))  # alice's node
    hub._take(reply(1, "10.66.66.66", alice_key))  # the same counter again: a replay
    assert [m["host"] for m in hub.buffers["alice"]] == ["127.0.0.2"] and hub.dropped_replies == 4


def test_a_checking_node_s_worker_lists_only_models_of_jobs_it_consented_to(
    tengine: Engine, tnodes: Nodes
) -> None:
    """The coordinator's key may ask a node's worker for its member's models (``list_models``): a checking
    node's worker answers with the models of jobs it consented to in this session only, never the
    member's whole model folder (names and lineage of every model it ever trained)."""
    other_job = "0x" + secrets.token_hex(32)
    folder = tnodes.dir("alice") / "models" / "m-not-in-this-session"
    write_meta(folder, {"model_id": folder.name, "version": 1, "lineage": {"job_id": other_job, "seq": 3}})
    try:
        listed = tengine.list_models("alice")
        assert folder.name not in {m.get("model_id") for m in listed}
        assert all(str(m["lineage"]["job_id"]).lower() != other_job for m in listed)
    finally:
        shutil.rmtree(folder)


def test_a_ports_reply_whose_certificate_is_not_its_node_s_is_dropped(tmp_path: Path) -> None:
    """The certificate a party's peers will trust travels in its node's signed ports reply: a reply with
    a certificate is taken only signed by the party's member key and with the certificate's own
    fingerprint; anyone else's (a non-party's self-signed certificate) is dropped."""
    alice_key, mallory_key = "0x" + "a1" * 32, "0x" + "66" * 32
    alice = Account.from_key(alice_key).address
    ids = {n: make_identity(tmp_path / n, n) for n in ("alice", "mallory")}
    hub = RedisSession(redis.Redis.from_url(REDIS_URL), ["alice", "bob"], party_addresses={"alice": alice})

    def reply(ctr: int, tls: dict[str, str], key: str) -> bytes:
        entry = {"session": hub.session, "party": "alice", "op": "ports", "ctr": ctr, "host": "127.0.0.1",
                 "ports": {"fed": 1, "spu": {}}, "tls": tls}  # fmt: skip
        return encode(sign_entry(entry, key, REPLY_DOMAIN))

    hub._take(reply(1, ids["mallory"].public(), mallory_key))  # mallory's certificate, her signature
    forged = {"cert": ids["mallory"].cert_pem, "fingerprint": ids["alice"].fingerprint}
    hub._take(reply(1, forged, alice_key))  # a fingerprint that is not the certificate's
    assert list(hub.buffers["alice"]) == [] and hub.dropped_replies == 2 and hub.port_proofs == {}
    hub._take(reply(2, ids["alice"].public(), alice_key))
    assert [m["tls"]["fingerprint"] for m in hub.buffers["alice"]] == [ids["alice"].fingerprint]
    assert entry_signer(hub.port_proofs["alice"], REPLY_DOMAIN) == alice.lower()


def test_a_node_trusts_only_certificates_its_peers_signed(
    tmp_path: Path, ledger_stack: LedgerStack, pinned: Path
) -> None:
    """The table reaches a node through the coordinator, who could swap a peer's certificate for one
    of its own: the node checks each party's signed ports reply itself, admits a peer's certificate only
    when an active member of its pinned registry signed it (a key of the coordinator's own making gets no
    link connection at all), and later refuses job requests whose parties are not the members that signed
    the certificates its tunnel trusts (a registered member signing in another party's place)."""
    keys = {"alice": "0x" + "a1" * 32, "bob": "0x" + "b2" * 32, "mallory": "0x" + "66" * 32}
    keys["eve"] = Account.create().key.to_0x_hex()  # a member of the consortium, not of this job
    addr = {p: Account.from_key(k).address.lower() for p, k in keys.items()}
    registry = ledger_stack.registry()
    for member in ("alice", "bob", "eve"):  # mallory is no member: a key the coordinator made
        if not registry.is_active_member(to_checksum_address(addr[member])):
            registry.register_member(to_checksum_address(addr[member]))
    ids = {n: make_identity(tmp_path / "tls" / n, n) for n in keys}
    (tmp_path / "alice" / "secrets").mkdir(parents=True, mode=0o700)
    (tmp_path / "alice" / "secrets" / "member.key").write_text(keys["alice"])
    guard = QueueGuard("alice", addr["alice"], open_authority(ledger_stack.rpc_url, pinned))
    node = Node("alice", tmp_path / "alice", REDIS_URL, tls=ids["alice"], guard=guard)
    session = uuid.uuid4().hex

    def attempt(signer: dict[str, str], cert: dict[str, str], shown: dict[str, str] | None = None) -> Session:
        """Alice's node gets a table: each party's ports signed by ``signer[party]`` with the certificate
        of ``cert[party]``; the table itself shows the certificates of ``shown`` (default: ``cert``)."""
        sess = Session(session=session, scratch=tmp_path / "s")
        sess.public = {"fed": listen_socket("127.0.0.1")}
        table: dict[str, PartyPorts] = {}
        proofs: dict[str, dict[str, Any]] = {}
        for party in ("alice", "bob"):
            port = int(sess.public["fed"].getsockname()[1]) if party == "alice" else 1
            ports: dict[str, Any] = {"fed": port, "spu": {}}
            proofs[party] = sign_entry(
                {"session": session, "party": party, "op": "ports", "ctr": 1, "host": "127.0.0.1",
                 "ports": ports, "tls": ids[cert[party]].public()},
                keys[signer[party]], REPLY_DOMAIN,
            )  # fmt: skip
            table[party] = PartyPorts(
                host="127.0.0.1", tls_cert=ids[(shown or cert)[party]].cert_pem, **ports
            )
        try:
            worker = node._tunnel(sess, table, proofs)
        finally:
            sess.public["fed"].close()
        assert all(p.host == "127.0.0.1" and p.tls_cert is None for p in worker.values())
        return sess

    honest = {"alice": "alice", "bob": "bob"}
    # a certificate for bob signed by a key that is no member: refused with the table, no tunnel starts
    with pytest.raises(TlsError, match=f"signed by {addr['mallory']}, which is no active member"):
        attempt({"alice": "alice", "bob": "mallory"}, {"alice": "alice", "bob": "mallory"})
    # signed by eve, a member: taken for the table (the node learns the job's parties only with a job
    # request), then every job request naming bob's member is refused
    swapped = attempt({"alice": "alice", "bob": "eve"}, {"alice": "alice", "bob": "eve"})
    assert swapped.tunnel is not None
    swapped.tunnel.close()
    assert swapped.cert_signers == {"alice": addr["alice"], "bob": addr["eve"]}
    assert not Node._certs_of_members(swapped, {"alice": addr["alice"], "bob": addr["bob"]})
    with pytest.raises(
        TlsError, match="not those its node signed"
    ):  # bob signed his; the table shows another
        attempt(honest, honest, {"alice": "alice", "bob": "mallory"})
    with pytest.raises(TlsError, match="own certificate"):  # a certificate for alice that is not hers
        attempt({"alice": "mallory", "bob": "bob"}, {"alice": "mallory", "bob": "bob"})
    sess = attempt(honest, honest)
    try:
        assert sess.cert_signers == {"alice": addr["alice"], "bob": addr["bob"]}
        assert Node._certs_of_members(sess, {"alice": addr["alice"], "bob": addr["bob"]})
        assert not Node._certs_of_members(sess, {"alice": addr["alice"], "bob": addr["mallory"]})
        assert not Node._certs_of_members(sess, None)
    finally:
        assert sess.tunnel is not None
        sess.tunnel.close()
