"""The party worker process: `python -m secureflow.compute.worker.main <settings.json>`.

One long-lived process per party. It keeps its secret (``salt``) and member key in
``<party_dir>/secrets`` (created on first start, mode 0600; they never leave
the process; the salt of each job's digests is derived from the secret and the
job id, `secureflow.ledger.signing.job_salt`), initialises SecretFlow in production mode and the SPU devices
once, then serves the coordinator's requests over the inherited socket
(`secureflow.compute.worker.protocol`) until told to shut down or until the coordinator
goes away (EOF on the socket, parent-death signal, or parent pid change: the
worker exits, so it never outlives the engine).

Requests: ``consent`` (check a proposed job against the party's policy, then
sign its EIP-712 consent with the member key, or refuse with the reasons),
``open_job`` (read this party's datasets and model metadata, report column
names and kinds only), ``verify_models`` (re-hash this party's own share
files against its salted digest and the metadata against the on-chain hash the
coordinator read; refused models are never loaded), ``load_models`` (only models
verified in this job), ``run_step`` (run the algorithm
SPMD, return salted digests of its own inputs and outputs), ``sign`` (sign its
part of the assembled step record), ``write_model_meta``, ``list_models``,
``close_job`` (drop the job's objects, wipe the private temp dir), ``ping``,
``shutdown``. Errors are reported by class and a message naming no cell value;
logs never include data (the log level is ``warning``; tracebacks are logged
without exception messages).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pandas as pd

from secureflow.compute.errors import (
    ComputeError,
    ConsentRefusedError,
    DatasetError,
    ModelError,
    ModelIntegrityError,
    SchemaError,
)
from secureflow.compute.joblogs import JOB_LOGGER, JobLogHandler
from secureflow.compute.manifest import OUTPUT_FOLDER, JobManifest
from secureflow.compute.models import (
    MODEL_META,
    anchor_key,
    check_anchored,
    check_meta_hash,
    check_runtime_config,
    describe,
    files_digest,
    list_models,
    model_hash,
    model_id_for,
    read_meta,
    verify_own_shares,
    write_meta,
)
from secureflow.compute.policy import consent_refusals, load_policy
from secureflow.compute.registry import get_loader
from secureflow.compute.schema import ObjectInfo, column_kind
from secureflow.compute.worker.consented import (
    ConsentedJob,
    check_open_job,
    check_record,
    check_step,
    consented_steps,
)
from secureflow.compute.worker.context import ModelHandle, ReportSlice, StepContext, TableSlice, WorkerObject
from secureflow.compute.worker.protocol import WorkerSettings, is_loopback, protocol_of
from secureflow.compute.worker.trust import request_job_id
from secureflow.ledger.consent import consent_digest, recover_signer, sign_consent, sign_create_job
from secureflow.ledger.records import PartyDigests, StepRecord, canonical_json, job_id_for
from secureflow.ledger.signing import job_salt, salted_digest, sign_party

log = logging.getLogger("secureflow.compute.worker")
joblog = logging.getLogger(JOB_LOGGER)
"""Lines for the current job's log only (scrubbed; never the rolling worker log): steps, outcomes."""
MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
"""A model id as the manifest allows it (`secureflow.compute.manifest.ModelId`): one folder name."""


def _die_with_parent() -> None:
    with contextlib.suppress(OSError):  # Linux: SIGKILL this process when the coordinator dies
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def _listen(host: str, port: int) -> str:
    """Where to listen: loopback stays loopback; a node's public --host may be NATed, so all interfaces."""
    return f"{host}:{port}" if is_loopback(host) else f"0.0.0.0:{port}"


def _read_or_create(path: Path, make: Any) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists():
        return path.read_bytes()
    data: bytes = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return data


def content_digest(obj: WorkerObject) -> bytes | None:
    """keccak of the canonical bytes of this party's slice of an object (see secureflow.ledger.signing)."""
    from eth_utils.crypto import keccak

    if obj.digest is not None:
        return obj.digest
    if isinstance(obj, TableSlice):
        if obj.df is None:
            return None
        data = obj.df.to_csv(index=False, float_format="%.17g", lineterminator="\n").encode()
    elif isinstance(obj, ReportSlice):
        if obj.data is None:
            return None
        data = canonical_json(obj.data)
    else:
        if not obj.files:
            return None
        obj.digest = files_digest(obj.files)  # the rule integrity checks re-hash a stored model by
        return obj.digest
    obj.digest = bytes(keccak(data))
    return obj.digest


CONSENT_BOUND_OPS = frozenset(
    {"open_job", "verify_models", "load_models", "run_step", "sign", "write_model_meta", "create_job_tx"}
)
"""Requests a checking node's worker takes only for a job it consented to itself (``require_consent``)."""
MAX_CREATE_JOB_GAS = 2_000_000
"""The most gas a creator's worker gives ``createJob`` (8 parties with consents need well under 1M)."""
MAX_CREATE_JOB_SIGNATURES = 3
"""Nonces a creator's worker signs ``createJob`` at, per job (the coordinator retries a lost nonce race)."""


def _lineage_job(meta: dict[str, Any]) -> str:
    lineage = meta.get("lineage")
    return str(lineage.get("job_id", "")).lower() if isinstance(lineage, dict) else ""


class Worker:
    def __init__(self, settings: WorkerSettings, conn: Connection) -> None:
        self.settings = settings
        self.conn = conn
        self.party = settings.party
        self.parties = tuple(settings.parties)
        self.root = Path(settings.party_dir)
        self.data_dir = self.root / "data"
        self.models_dir = self.root / "models"
        self.scratch = Path(settings.scratch_dir) if settings.scratch_dir else self.root
        self.tmp_root = self.scratch / "tmp"
        for d in (self.data_dir, self.models_dir, self.tmp_root, self.scratch / "work"):
            d.mkdir(parents=True, exist_ok=True)
        # the party's secret: never used as a salt itself, only to derive each job's salt (`job_salt`)
        self.salt = _read_or_create(self.root / "secrets" / "salt", lambda: secrets.token_bytes(32))
        key_hex = _read_or_create(
            self.root / "secrets" / "member.key", lambda: secrets.token_bytes(32).hex().encode()
        )
        self.key = bytes.fromhex(key_hex.decode().strip().removeprefix("0x"))
        from eth_account import Account

        self.address = str(Account.from_key(self.key).address)
        self.devices: dict[str, Any] = {}
        self.jobs: dict[str, dict[str, WorkerObject]] = {}
        self.last_digests: PartyDigests | None = None
        self.last_step: tuple[str, int] | None = None
        self.verified: dict[str, set[str]] = {}  # job id -> model ids whose integrity this party checked
        self.consented: dict[str, ConsentedJob] = {}  # job id -> what this party consented to
        self.create_signatures: dict[str, dict[int, tuple[bytes, str]]] = {}  # job id -> nonce -> (raw, hash)
        self.job_logs = JobLogHandler(self.root)
        """Each job's own log, ``<party_dir>/joblogs/<job_id>.log``, scrubbed with this party's cells."""
        logging.getLogger().addHandler(self.job_logs)
        joblog.setLevel(logging.INFO)
        joblog.propagate = False
        joblog.addHandler(self.job_logs)

    # -- start-up ----------------------------------------------------------------------------------
    def init_secretflow(self) -> dict[str, float]:
        t0 = time.monotonic()
        import secretflow as sf

        t1 = time.monotonic()
        cluster = {
            "parties": {
                p: {"address": f"{ports.host}:{ports.fed}", "listen_addr": _listen(ports.host, ports.fed)}
                for p, ports in self.settings.parties.items()
            },
            "self_party": self.party,
        }
        sf.init(
            address=None,
            cluster_config=cluster,
            ray_mode=False,
            cross_silo_comm_backend="brpc_link",
            enable_waiting_for_other_parties_ready=True,
            logging_level=self.settings.log_level,
        )
        for p in self.parties:
            self.devices[f"pyu:{p}"] = sf.PYU(p)
        for profile, runtime in self.settings.spu_profiles.items():
            nodes = [
                {
                    "party": p,
                    "address": f"{ports.host}:{ports.spu[profile]}",
                    "listen_address": _listen(ports.host, ports.spu[profile]),
                }
                for p, ports in self.settings.parties.items()
            ]
            self.devices[f"spu:{profile}"] = sf.SPU(
                {"nodes": nodes, "runtime_config": dict(runtime)},
                link_desc={
                    "connect_retry_times": 120,
                    "connect_retry_interval_ms": 500,
                    "recv_timeout_ms": 3600_000,
                },
            )
        logging.getLogger().setLevel(self.settings.log_level.upper())
        t2 = time.monotonic()
        return {"import_s": t1 - t0, "init_s": t2 - t1}

    # -- request loop ------------------------------------------------------------------------------
    def serve(self) -> None:
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                os._exit(0)
            op = msg.get("op")
            if op == "shutdown":
                self._reply({"ok": True})
                self._clean_tmp()
                os._exit(0)
            handler = getattr(self, f"op_{op}", None)
            if handler is None:
                self._reply({"ok": False, "error_class": "WorkerError", "message": f"unknown op {op!r}"})
                continue
            job_id = request_job_id(msg) if op not in ("ping", "list_models") else None
            with self.job_logs.job_context(job_id):
                reply = self._handle(str(op), handler, msg, job_id)
            self._reply(reply)

    def _handle(self, op: str, handler: Any, msg: dict[str, Any], job_id: str | None) -> dict[str, Any]:
        """Run one request; its outcome goes to the job's log (when it names a job)."""
        t0 = time.monotonic()
        what = f"step {msg.get('seq')} ({msg.get('algorithm')})" if op == "run_step" else op
        try:
            self._check_own_consent(op, msg)
            reply: dict[str, Any] = handler(msg)
            reply.setdefault("ok", True)
        except ComputeError as exc:
            reply = {"ok": False, "error_class": exc.error_class, "message": str(exc)}
        except Exception as exc:  # never forward a foreign message: it may quote data
            log.error(
                "step failed with %s:\n%s",
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)),
            )
            reply = {
                "ok": False,
                "error_class": "StepExecutionError",
                "message": f"{type(exc).__name__} while handling {op}",
                "fatal": True,
            }
        if job_id is not None:
            took = time.monotonic() - t0
            if reply.get("ok"):
                joblog.info("party %s: %s done in %.2f s", self.party, what, took)
            else:
                joblog.warning(
                    "party %s: %s failed in %.2f s: %s: %s",
                    self.party,
                    what,
                    took,
                    reply.get("error_class"),
                    reply.get("message"),
                )
        return reply

    def _reply(self, reply: dict[str, Any]) -> None:
        try:
            self.conn.send(reply)
        except (EOFError, OSError):
            os._exit(0)

    def _clean_tmp(self) -> None:
        for child in self.tmp_root.iterdir():
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
        work = self.scratch / "work"
        for child in work.iterdir():  # SecretFlow/PSI leave trace files in the cwd
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)

    def _check_own_consent(self, op: str, msg: dict[str, Any]) -> None:
        """A checking node's worker (``require_consent``) acts on a job only once it consented to it itself
        in this process (`op_consent`), so every job request is held to the manifest it checked
        (`secureflow.compute.worker.consented`): on-chain consent given in another session is not enough."""
        if not self.settings.require_consent or op not in CONSENT_BOUND_OPS:
            return
        if op == "sign":
            job_id = StepRecord.model_validate_json(msg["record"]).job_id
        elif op == "write_model_meta":
            job_id = str(dict(dict(msg.get("meta") or {}).get("lineage") or {}).get("job_id", ""))
        else:
            job_id = str(msg.get("job_id", ""))
        if job_id.lower() not in self.consented:
            raise ConsentRefusedError(
                f"party {self.party!r} has not consented to job {job_id} in this session; refusing {op}",
                hint="the coordinator asks every party's node for its consent before it runs a job, also "
                "when it takes over a job that is open on chain already",
            )

    # -- ops ---------------------------------------------------------------------------------------
    def op_ping(self, msg: dict[str, Any]) -> dict[str, Any]:
        return {"party": self.party, "address": self.address, "pid": os.getpid()}

    def _dataset_path(self, rel: str) -> Path:
        path = (self.data_dir / rel).resolve()
        if not path.is_relative_to(self.data_dir.resolve()):
            raise DatasetError("dataset path leaves the party's data directory")
        if not path.is_file():
            raise DatasetError(f"dataset file {rel!r} not found in party {self.party!r}'s data directory")
        return path

    def op_open_job(self, msg: dict[str, Any]) -> dict[str, Any]:
        job_id: str = msg["job_id"]
        consented = self.consented.get(job_id.lower())
        if consented is not None:
            check_open_job(consented, self.party, job_id, msg)
        store: dict[str, WorkerObject] = {}
        infos: dict[str, dict[str, Any]] = {}
        from eth_utils.crypto import keccak

        for name, rel in msg["datasets"].items():
            path = self._dataset_path(rel)
            try:
                df = pd.read_csv(path)
            except Exception:
                raise DatasetError(
                    f"dataset {name!r} of party {self.party!r} is not a readable CSV"
                ) from None
            if df.columns.duplicated().any():
                raise SchemaError(f"dataset {name!r} of party {self.party!r} has duplicate column names")
            cols = {str(c): column_kind(t) for c, t in df.dtypes.items()}
            df.columns = [str(c) for c in df.columns]
            info = ObjectInfo(kind="table", columns={self.party: cols})
            store[name] = TableSlice(info=info, df=df, digest=bytes(keccak(path.read_bytes())))
            infos[name] = info.model_dump()
        models: dict[str, dict[str, Any]] = {}
        for name, model_id in msg.get("models", {}).items():
            meta = read_meta(self.models_dir / model_id)
            if meta.get("model_hash") != model_hash(meta):
                raise ModelError(f"the metadata of model {model_id!r} does not match its model hash")
            models[name] = {"meta": meta}
        self.jobs[job_id] = store
        self.job_logs.set_datasets(
            job_id, {s.digest: s.df for s in store.values() if isinstance(s, TableSlice) and s.digest}
        )
        for name, table in store.items():
            if isinstance(table, TableSlice) and table.df is not None:
                joblog.info(
                    "party %s: opened dataset %s (%d rows; columns %s)",
                    self.party,
                    name,
                    len(table.df),
                    ", ".join(str(c) for c in table.df.columns),
                )
        return {"infos": infos, "models": models}

    def op_verify_models(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Check each model before it is loaded: this party's own share files against its salted digest,
        and the metadata's hash against the hash anchored on chain (``anchored``, read by the coordinator)."""
        verified = self.verified.setdefault(msg["job_id"], set())
        for name, model_id in msg["models"].items():
            model_dir = self.models_dir / model_id
            meta = read_meta(model_dir)
            if meta.get("model_id") != model_id:
                raise ModelIntegrityError(
                    f"{describe(meta)}: its metadata is stored under model id {model_id!r}"
                )
            check_meta_hash(meta)
            check_anchored(meta, msg.get("anchored", {}).get(name))
            salt = job_salt(self.salt, anchor_key(meta)[0])  # the salt of the job that trained it
            verify_own_shares(model_dir, meta, party=self.party, address=self.address, salt=salt)
            verified.add(model_id)
        return {}

    def op_load_models(self, msg: dict[str, Any]) -> dict[str, Any]:
        store = self.jobs[msg["job_id"]]
        verified = self.verified.get(msg["job_id"], set())
        for name, model_id in msg["models"].items():
            model_dir = self.models_dir / model_id
            if model_id not in verified:
                raise ModelIntegrityError(
                    f"model {model_id!r} was not verified in this job before its load",
                    hint="run verify_models (share digests and on-chain hash) before load_models",
                )
            meta = read_meta(model_dir)
            profile = meta.get("spu_profile", "default")
            runtime = self.settings.spu_profiles.get(profile)
            if runtime is None:
                raise ModelError(f"model {model_id!r} needs unknown SPU profile {profile!r}")
            check_runtime_config(meta, runtime)
            ctx = self._context(msg["job_id"], -1, {}, {}, {}, profile)
            handle = get_loader(meta["algorithm"])(ctx, model_dir, meta)
            handle.info = ObjectInfo.model_validate(msg["infos"][name])
            store[name] = handle
        return {}

    def _context(
        self,
        job_id: str,
        seq: int,
        inputs: dict[str, WorkerObject],
        in_infos: dict[str, ObjectInfo],
        out_infos: dict[str, ObjectInfo],
        profile: str | None,
    ) -> StepContext:
        tmp = Path(tempfile.mkdtemp(prefix=f"step{seq}-", dir=self.tmp_root))
        return StepContext(
            self_party=self.party,
            parties=self.parties,
            job_id=job_id,
            seq=seq,
            inputs=inputs,
            input_infos=in_infos,
            output_infos=out_infos,
            devices=self.devices,
            spu_profiles=dict(self.settings.spu_profiles),
            spu_profile=profile,
            tmp_dir=tmp,
            models_dir=self.models_dir,
        )

    def op_run_step(self, msg: dict[str, Any]) -> dict[str, Any]:
        from secureflow.compute.registry import get_algorithm

        job_id: str = msg["job_id"]
        consented = self.consented.get(job_id.lower())
        if consented is not None:
            check_step(consented, self.party, job_id, msg)
        store = self.jobs[job_id]
        self.last_step, self.last_digests = (job_id, int(msg["seq"])), None  # signable once it succeeded
        spec = get_algorithm(msg["algorithm"])
        joblog.info(  # parameter names only: a value may be a cell of another party (its own log scrubs
            # only its own cells); the values are in the manifest, their commitment in the record
            "party %s: step %s (%s) started with parameters %s",
            self.party,
            msg["seq"],
            msg["algorithm"],
            ", ".join(sorted(str(k) for k in dict(msg["params"] or {}))) or "(none)",
        )
        params = spec.parse_params(msg["params"])
        in_infos = {s: ObjectInfo.model_validate(i) for s, i in msg["input_infos"].items()}
        out_infos = {s: ObjectInfo.model_validate(i) for s, i in msg["output_infos"].items()}
        salt = job_salt(self.salt, job_id)  # this job's salt: digests of other jobs cannot be linked
        inputs: dict[str, WorkerObject] = {}
        in_digests: dict[str, str] = {}
        for slot, name in msg["inputs"].items():
            obj = store[name]
            if isinstance(obj, TableSlice):  # re-check in the worker: the columns this party must hold
                expected = list(in_infos[slot].columns.get(self.party, {}))
                have = [] if obj.df is None else list(obj.df.columns)
                if expected != have:
                    raise SchemaError(f"input {name!r} of party {self.party!r} does not match its plan")
            inputs[slot] = obj
            digest = content_digest(obj)
            if digest is not None:
                in_digests[name] = salted_digest(salt, digest)
        ctx = self._context(job_id, msg["seq"], inputs, in_infos, out_infos, spec.spu)
        ctx.output_names = dict(msg["outputs"])
        try:
            spec.run(ctx, params)
        finally:
            shutil.rmtree(ctx.tmp_dir, ignore_errors=True)
            self._clean_tmp()
        out_digests: dict[str, str] = {}
        model_files: dict[str, list[str]] = {}
        for slot, name in msg["outputs"].items():
            out = ctx.outputs.get(slot)
            if out is None:
                raise SchemaError(f"algorithm {spec.name} produced no {slot!r} output")
            store[name] = obj = out
            digest = content_digest(obj)
            if digest is not None:
                out_digests[name] = salted_digest(salt, digest)
            if isinstance(obj, ModelHandle) and obj.model_dir is not None:
                model_files[name] = [str(obj.model_dir.name)]
        for slot, rel in msg.get("save", {}).items():
            self._save(ctx.outputs[slot], rel)
        reports = {
            name: obj.data
            for slot, name in msg["outputs"].items()
            if isinstance(obj := store[name], ReportSlice)
            and obj.data is not None
            and msg.get("reveal_reports")
            and not obj.info.meta.get("private")
        }
        self.last_digests = PartyDigests(party=self.address, inputs=in_digests, outputs=out_digests)
        ctx.cleanup()
        return {"inputs": in_digests, "outputs": out_digests, "reports": reports, "model_dirs": model_files}

    def _save(self, obj: WorkerObject, rel: str) -> None:
        """Write a step's output into the party's output folder; never over an existing file."""
        path = (self.data_dir / rel).resolve()
        if not path.is_relative_to((self.data_dir / OUTPUT_FOLDER).resolve()):
            raise DatasetError(f"save path leaves the party's output folder {OUTPUT_FOLDER}/")
        if path.exists():
            raise DatasetError(
                f"{rel!r} exists in party {self.party!r}'s data folder: a step never overwrites a file",
                hint="save to a new file name under out/",
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(obj, TableSlice) and obj.df is not None:
            with path.open("x", encoding="utf-8", newline="") as fh:
                obj.df.to_csv(fh, index=False)
        elif isinstance(obj, ReportSlice) and obj.data is not None:
            with path.open("xb") as fb:
                fb.write(canonical_json(obj.data))

    def op_consent(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Check a proposed job against this party's policy, then sign its EIP-712 consent, or refuse.

        The party computes the manifest commitment itself (under the job secret it is given with the
        manifest) and checks that the job id is the one the ledger derives from the creator, that
        commitment and the salt: it never signs a hash it was only told.
        """
        manifest = JobManifest.parse(msg["manifest"])
        manifest_hash = manifest.manifest_hash(str(msg["job_secret"]))
        job_id = job_id_for(msg["creator"], manifest_hash, msg["salt"])
        if job_id != str(msg["job_id"]).lower():
            raise ConsentRefusedError(
                f"party {self.party!r} refuses job {msg['job_id']}: it is not the id of this manifest "
                "for its creator and salt"
            )
        policy = load_policy(self.root)
        reasons = policy.deployment_refusals(int(msg["chain_id"]), str(msg["ledger"]))
        reasons += consent_refusals(policy, manifest, self.address, self.data_dir)
        session_protocol = protocol_of(self.settings.spu_profiles)
        if manifest.spu_protocol != session_protocol:
            reasons.append(
                f"the job names SPU protocol {manifest.spu_protocol} but this party's SPU runs "
                f"{session_protocol or 'no known protocol'}"
            )
        if reasons:
            raise ConsentRefusedError(f"party {self.party!r} refuses job {job_id}: {'; '.join(reasons)}")
        self.consented[job_id] = ConsentedJob(
            manifest_hash=manifest_hash,
            creator=str(msg["creator"]),
            salt=str(msg["salt"]),
            parties=tuple(manifest.address_of(p) for p in manifest.party_names()),
            chain_id=int(msg["chain_id"]),
            ledger=str(msg["ledger"]),
            datasets={n: per[self.party] for n, per in manifest.datasets.items() if self.party in per},
            models=dict(manifest.models),
            steps=consented_steps(manifest, str(msg["job_secret"])),
        )
        signature = sign_consent(
            "0x" + self.key.hex(),
            int(msg["chain_id"]),
            str(msg["ledger"]),
            bytes.fromhex(job_id[2:]),
            bytes.fromhex(manifest_hash[2:]),
        )
        log.warning("party %s consented to job %s", self.party, job_id)
        return {"signature": "0x" + signature.hex(), "manifest_hash": manifest_hash, "address": self.address}

    def op_create_job_tx(self, msg: dict[str, Any]) -> dict[str, Any]:
        """As the job's creator, sign the ``createJob`` transaction of a job this worker consented to.

        Only for a job this worker consented to, as its creator, on the chain and ledger it consented
        on, with the manifest commitment, salt and party list it checked itself; the coordinator
        supplies only the nonce, the gas limit and gas price (capped by the policy) and the parties'
        consents, each of which must be that party's EIP-712 consent to this job. So the signed bytes can
        only open that job, Open. A request for a nonce it signed already gets the same bytes; at most
        `MAX_CREATE_JOB_SIGNATURES` nonces are signed per job (a lost nonce race), so a coordinator cannot
        collect transactions that burn the creator's nonces or gas. A gas price above 0 needs the policy to
        pin the chain and the ledger.
        """
        job_id = str(msg["job_id"]).lower()
        job = self.consented.get(job_id)
        if job is None:
            raise ConsentRefusedError(f"party {self.party!r} has not consented to job {job_id}; not signing")
        if job.creator.lower() != self.address.lower():
            raise ConsentRefusedError(f"party {self.party!r} is not the creator of job {job_id}; not signing")
        gas, gas_price, nonce = int(msg["gas"]), int(msg["gas_price"]), int(msg["nonce"])
        if not (0 < gas <= MAX_CREATE_JOB_GAS and nonce >= 0):
            raise ComputeError(f"createJob gas {gas} or nonce {nonce} out of range; not signing")
        signed = self.create_signatures.setdefault(job_id, {})
        if nonce in signed:
            raw, tx_hash = signed[nonce]
            return {"raw": "0x" + raw.hex(), "tx_hash": tx_hash, "parties": list(job.parties)}
        if len(signed) >= MAX_CREATE_JOB_SIGNATURES:
            raise ConsentRefusedError(
                f"party {self.party!r} signed createJob of job {job_id} at {len(signed)} nonces already; "
                "not signing again",
                hint="submit the job again (a new job id) if it never opened on chain",
            )
        policy = load_policy(self.root)
        if gas_price > policy.max_gas_price_wei:
            raise ConsentRefusedError(
                f"party {self.party!r} signs createJob at a gas price of at most {policy.max_gas_price_wei} "
                f"wei, not {gas_price}",
                hint="raise max_gas_price_wei in the node's policy.json on a network that charges gas",
            )
        if gas_price > 0 and (policy.chain_id is None or policy.ledger is None):
            raise ConsentRefusedError(
                f"party {self.party!r} signs a createJob that pays gas only on a pinned deployment",
                hint="set chain_id and ledger in the node's policy.json",
            )
        consents = [bytes.fromhex(str(c).removeprefix("0x")) for c in msg["consents"]]
        if len(consents) != len(job.parties):
            raise ComputeError(f"job {job_id} has {len(job.parties)} parties, not {len(consents)} consents")
        digest = consent_digest(
            job.chain_id, job.ledger, bytes.fromhex(job_id[2:]), bytes.fromhex(job.manifest_hash[2:])
        )
        for party, consent in zip(job.parties, consents, strict=True):
            if recover_signer(digest, consent) != party.lower():
                raise ConsentRefusedError(
                    f"the consent given for party {party} is not its consent to job {job_id}; not signing"
                )
        raw, tx_hash = sign_create_job(
            "0x" + self.key.hex(),
            chain_id=job.chain_id,
            ledger_address=job.ledger,
            nonce=nonce,
            gas=gas,
            gas_price=gas_price,
            manifest_hash=bytes.fromhex(job.manifest_hash[2:]),
            salt=bytes.fromhex(job.salt.removeprefix("0x")),
            parties=job.parties,
            consents=consents,
        )
        signed[nonce] = (raw, tx_hash)
        log.warning("party %s signed createJob of job %s (nonce %d)", self.party, job_id, nonce)
        return {"raw": "0x" + raw.hex(), "tx_hash": tx_hash, "parties": list(job.parties)}

    def op_sign(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Sign this party's part of the record of the step it ran last, and nothing else.

        The record must be of the job and step this worker ran last; a succeeded record must carry
        exactly the digests this worker computed, and a failed one no digests of this party. So a
        queue writer cannot make the worker sign an invented record (no signing oracle).
        """
        record = StepRecord.model_validate_json(msg["record"])
        mine = [p for p in record.parties if p.party.lower() == self.address.lower()]
        if len(mine) != 1:
            raise ComputeError("the record does not carry exactly one part of this party; refusing to sign")
        consented = self.consented.get(record.job_id.lower())
        if consented is not None:
            check_record(consented, self.party, record)
        part, last = mine[0], self.last_digests
        if self.last_step != (record.job_id, record.seq):
            raise ComputeError(
                f"this worker did not run step {record.seq} of job {record.job_id} last; refusing to sign"
            )
        if record.status == "succeeded":
            if last is None or (dict(part.inputs), dict(part.outputs)) != (
                dict(last.inputs),
                dict(last.outputs),
            ):
                raise ComputeError("the record does not carry this party's digests; refusing to sign")
        elif part.inputs or part.outputs:
            raise ComputeError("a failed step's record carries digests of this party; refusing to sign")
        self.last_step, self.last_digests = None, None
        return {"signature": sign_party(record, part, self.key)}

    def op_write_model_meta(self, msg: dict[str, Any]) -> dict[str, Any]:
        model_id = str(msg["model_id"])
        target = (self.models_dir / model_id).resolve()
        if not MODEL_ID.fullmatch(model_id) or target.parent != self.models_dir.resolve():
            raise ModelError(f"model id {model_id[:80]!r} is not a folder name inside the models folder")
        meta = dict(msg["meta"])
        lineage = dict(meta.get("lineage") or {})
        try:
            own_id = model_id_for(str(lineage["job_id"]), int(lineage["seq"]), str(meta["name"]))
        except (KeyError, TypeError, ValueError):
            own_id = None
        if meta.get("model_id") != model_id or own_id != model_id:
            raise ModelError(
                f"model {model_id!r}: its metadata names another model, or the id is not that of the job "
                "step that trained it; not written"
            )
        if (target / MODEL_META).is_file() and read_meta(target) != meta:
            raise ModelError(f"model {model_id!r} has metadata already: a model's metadata is written once")
        write_meta(target, meta)
        return {}

    def op_list_models(self, msg: dict[str, Any]) -> dict[str, Any]:
        models = list_models(self.models_dir)
        if self.settings.require_consent:  # a checking node's worker: only what its consented jobs made,
            # never the names and lineage of every model its member ever trained
            models = [m for m in models if _lineage_job(m) in self.consented]
        return {"models": models}

    def op_close_job(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.job_logs.end_job(str(msg["job_id"]))
        self.jobs.pop(msg["job_id"], None)
        self.verified.pop(msg["job_id"], None)
        self._clean_tmp()
        gc.collect()
        return {}


def _watch_parent(pid: int) -> None:
    while True:
        if os.getppid() != pid:
            os._exit(1)
        time.sleep(1.0)


def main(argv: list[str]) -> None:
    """``main.py SETTINGS_FILE``: start a party worker; ``main.py --standby FD NODE_PID``: a warm spare."""
    if len(argv) == 4 and argv[1] == "--standby":
        standby(int(argv[2]), int(argv[3]))
        return
    settings = WorkerSettings.model_validate_json(Path(argv[1]).read_text())
    _die_with_parent()
    threading.Thread(target=_watch_parent, args=(settings.coordinator_pid,), daemon=True).start()
    os.environ["SF_UT_DO_NOT_EXIT_ENV_FLAG"] = "1"  # a SecretFlow error must not os._exit mid-reply
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    run(settings, Connection(settings.fd), prewarmed=False)


def standby(fd: int, node_pid: int) -> None:
    """A warm spare of a node (`secureflow.compute.worker.standby`): import SecretFlow now, say so, then
    wait for the settings of the session it will serve (``{"op": "configure", "settings": FILE}``) and
    run as any worker from there, so that a job's first step does not wait for the import (~6-9 s).
    It knows no party, port, key or data until configured; EOF on its socket (the node stopped) ends it."""
    _die_with_parent()
    threading.Thread(target=_watch_parent, args=(node_pid,), daemon=True).start()
    os.environ["SF_UT_DO_NOT_EXIT_ENV_FLAG"] = "1"
    logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(name)s %(message)s")
    conn = Connection(fd)
    t0 = time.monotonic()
    import secretflow  # noqa: F401 - the import is what a standby worker is for

    conn.send({"op": "standby", "pid": os.getpid(), "import_s": time.monotonic() - t0})
    try:
        msg = conn.recv()
    except (EOFError, OSError):
        os._exit(0)
    if not isinstance(msg, dict) or msg.get("op") != "configure":
        os._exit(0)
    settings = WorkerSettings.model_validate_json(Path(str(msg["settings"])).read_text())
    scratch = Path(settings.scratch_dir or settings.party_dir)
    (scratch / "logs").mkdir(parents=True, exist_ok=True)
    out = os.open(scratch / "logs" / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(out, 1)  # from here on, this session's worker log, as a worker spawned for it would write
    os.dup2(out, 2)
    os.close(out)
    logging.getLogger().setLevel(settings.log_level.upper())
    run(settings, conn, prewarmed=True)


def run(settings: WorkerSettings, conn: Connection, *, prewarmed: bool) -> None:
    """Serve ``settings``' party over ``conn``: hello, SecretFlow's init, ready, then requests."""
    scratch = Path(settings.scratch_dir or settings.party_dir)
    tmp = scratch / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = str(tmp)
    tempfile.tempdir = str(tmp)
    work = scratch / "work"
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    worker = Worker(settings, conn)
    conn.send({"op": "hello", "party": worker.party, "address": worker.address, "pid": os.getpid()})
    try:
        timings = worker.init_secretflow()
    except Exception as exc:
        log.error("SecretFlow init failed: %s", type(exc).__name__)
        conn.send(
            {"op": "failed", "error_class": "WorkerError", "message": f"{type(exc).__name__} in sf.init"}
        )
        os._exit(1)
    timings["prewarmed"] = 1.0 if prewarmed else 0.0
    conn.send({"op": "ready", "timings": timings})
    worker.serve()


if __name__ == "__main__":
    main(sys.argv)
