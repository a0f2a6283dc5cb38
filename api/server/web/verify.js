// secureflow: verification of a step receipt or of an audit bundle in the browser, against a JSON-RPC node
// and a deployment the auditor pins; nothing is asked of the secureflow API. Plain browser JavaScript; the
// hashing, ABI and signature primitives come from verify-lib.js (viem and canonicalize, bundled from
// package-lock.json).
//
// The same checks, in the same order, with the same dependencies (a check whose prerequisites did not
// pass is "skipped") and the same details as `secureflow verify` (ledger/verify.py):
//
//   receipt_format    the receipt has the receipt format (version 2; version 1 verifies with a warning)
//   record_hash       the record is a step record in canonical form; keccak256(RFC 8785 JSON) == record_hash
//   leaf              the record's (job_id, seq) are the receipt's; leaf(job_id, seq, record_hash) == leaf
//   proof             the proof leads from the leaf to batch_root (sorted-pair keccak, OpenZeppelin)
//   chain_id          the node serves the pinned chain id, and the receipt is for that chain
//   code_hash         the code at the pinned ledger has the pinned code hash; its registry() is the pinned
//                     registry, whose code hash is checked when pinned
//   contract_pinned   the receipt names the pinned ledger
//   root_anchored     the pinned ledger's rootRecord(batch_root) was anchored at block_number; its
//                     verify(leaf, proof, root) is true
//   block_canonical   the node's block at block_number has block_hash; tx_hash is in it, succeeded, and the
//                     pinned ledger emitted BatchAnchored(batch_id, root) in it
//   anchor_role       that event's anchorer held ANCHOR_ROLE in the pinned registry at block_number
//   party_signatures  the record carries exactly the job's on-chain parties, each signed by its own key; an
//                     unsigned contribution record only if the pinned Settlement set the job's weights from it
//   confirmations     head - block_number + 1 >= min_confirmations
//
// An audit bundle (verifyBundle, as verify_bundle) has each receipt verified with these checks, then the
// bundle checks that prove the job complete:
//
//   records_covered   every record has a receipt carrying it, and every receipt is of this job
//   seqs              the records' seqs are 0..n-1, without gaps or duplicates
//   manifest_commitment  keccak256(job_secret || RFC 8785 JSON of the bundle's manifest) is the job's manifest
//                     hash (unsalted keccak256 without a job secret); skipped without a manifest
//   params_commitments  (only with a job secret) every compute record's params_hash is the commitment of its
//                     step's params in the manifest under the job secret
//   job_header        the pinned ledger's getJob/jobParties: the bundle's creator, manifest hash, parties (in
//                     order) and status
//   consents          every on-chain party has consented on chain (hasConsented)
//   job_closed        the chain says the job is Closed
//   step_count        the chain's step count == the number of records (== the manifest's steps); records
//                     past a closed job's step count must be contribution records
//   final_record      the record of seq stepCount-1, with its receipt's proof, reaches the job's on-chain
//                     finalRoot, a root anchored on the pinned ledger (rootRecord)
//
// The bundle's verdict (ok, summary, warnings, unadopted contribution records) is BundleVerdict's. A value
// that is not an audit bundle is refused (BundleFormatError), as secureflow verify refuses the file. The job
// id itself is not recomputed (keccak256(abi.encode(creator, manifestHash, salt)) needs the salt, which a
// bundle does not carry; secureflow verify does not either): the ledger derived it at createJob, so job_header
// finding the job under this id with the bundle's creator and manifest hash binds them.
//
// Exposes window.SecureflowVerify = { CHECK_ORDER, BUNDLE_CHECK_ORDER, BundleFormatError, pinFromDeployment,
// pinFromFields, verifyReceipt, verifyReceipts, verifyBundle }.
"use strict";

(() => {
  const L = window.SecureflowVerifyLib;

  const CHECK_ORDER = [
    "receipt_format",
    "record_hash",
    "leaf",
    "proof",
    "chain_id",
    "code_hash",
    "contract_pinned",
    "root_anchored",
    "block_canonical",
    "anchor_role",
    "party_signatures",
    "confirmations",
  ];
  const DEPENDS_ON = {
    receipt_format: [],
    record_hash: ["receipt_format"],
    leaf: ["record_hash"],
    proof: ["leaf"],
    chain_id: ["receipt_format"],
    code_hash: ["chain_id"],
    contract_pinned: ["receipt_format"],
    root_anchored: ["proof", "code_hash"],
    block_canonical: ["code_hash"],
    anchor_role: ["block_canonical"],
    party_signatures: ["record_hash", "code_hash"],
    confirmations: ["block_canonical"],
  };

  const HEX32 = /^0x[0-9a-fA-F]{64}$/;
  const SIGNATURE = /^0x[0-9a-fA-F]{130}$/;
  const UINT64_MAX = 2n ** 64n - 1n;
  const MAX_SAFE = Number.MAX_SAFE_INTEGER;
  const V1_WARNING =
    "version-1 receipt: it states no batch id and anchorer of its own, so there was nothing to cross-check " +
    "with the chain; both were taken from the chain's BatchAnchored event";

  const sel = (signature) => L.toFunctionSelector(signature);
  const SELECTORS = {
    registry: sel("registry()"),
    rootRecord: sel("rootRecord(bytes32)"),
    verify: sel("verify(bytes32,bytes32[],bytes32)"),
    getJob: sel("getJob(bytes32)"),
    jobParties: sel("jobParties(bytes32)"),
    hasConsented: sel("hasConsented(bytes32,address)"),
    hasRole: sel("hasRole(bytes32,address)"),
    ledger: sel("ledger()"),
    weightsOf: sel("weightsOf(bytes32)"),
  };
  const CONTRIBUTION_ALGORITHM = "contribution"; // a settlement's record, adopted through setWeights
  const UNATTRIBUTED = "it is attributed to none of them";
  const STATUS_NAMES = ["None", "Open", "Closed", "Failed", "Proposed"]; // AuditLedger.JobStatus
  const BATCH_ANCHORED_TOPIC = L.keccak256(L.stringToBytes("BatchAnchored(bytes32,bytes32,uint32,address)"));
  const ANCHOR_ROLE = L.keccak256(L.stringToBytes("ANCHOR_ROLE"));

  /** A check's verdict: failed, with this detail. */
  class Failed extends Error {}

  /** The node could not be reached at all: nothing on chain could be checked (the whole verification stops). */
  class NodeUnreachable extends Error {}

  const short = (value) => (value.length > 20 ? value.slice(0, 10) + "\u2026" + value.slice(-4) : value);
  const isInt = (value) => typeof value === "number" && Number.isInteger(value);

  /** The EIP-55 form of an address, accepted as eth_utils' is_address does (40 hex digits, 0x optional; a
   * mixed-case one must carry a valid checksum), or a Failed. */
  function checksum(value, what) {
    const hex = typeof value === "string" && /^(0x)?[0-9a-fA-F]{40}$/.test(value) ? value.replace(/^0x/, "") : null;
    const mixed = hex !== null && hex !== hex.toLowerCase() && hex !== hex.toUpperCase();
    if (hex === null || (mixed && L.getAddress("0x" + hex) !== "0x" + hex)) {
      throw new Failed(`the ${what} ${JSON.stringify(value)} is not an Ethereum address`);
    }
    return L.getAddress("0x" + hex.toLowerCase());
  }

  // -- the pin --------------------------------------------------------------------------------------------

  function pinnedHash(value, what) {
    if (value === null || value === undefined || value === "") return null;
    let text = String(value).toLowerCase();
    if (!text.startsWith("0x")) text = "0x" + text;
    if (!HEX32.test(text)) throw new Error(`the ${what} ${JSON.stringify(value)} is not 0x + 64 hex digits`);
    return text;
  }

  function pinnedAddress(value, what) {
    if (typeof value !== "string" || !L.isAddress(value.trim(), { strict: true })) {
      throw new Error(`the ${what} address ${JSON.stringify(value)} is not an Ethereum address`);
    }
    return L.getAddress(value.trim());
  }

  /** The pin of a deployment file written by `secureflow deploy` (its text). Throws on a malformed file. */
  function pinFromDeployment(text, source) {
    let data;
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new Error("the deployment is not JSON (" + err.message + ")");
    }
    if (!data || typeof data !== "object" || !data.contracts || typeof data.contracts !== "object") {
      throw new Error("the deployment has no contracts: give the JSON file written by secureflow deploy");
    }
    if (!isInt(data.chain_id)) throw new Error("the deployment has no chain_id");
    const pinned = (name) => {
      const entry = data.contracts[name];
      if (!entry || typeof entry !== "object") throw new Error(`the deployment has no ${name}`);
      return { name, address: pinnedAddress(entry.address, name), code_hash: pinnedHash(entry.code_hash, `${name}.code_hash`) };
    };
    return {
      source,
      chain_id: data.chain_id,
      ledger: pinned("AuditLedger"),
      registry: pinned("ConsortiumRegistry"),
      settlement: data.contracts.Settlement ? pinned("Settlement") : null,
    };
  }

  /** The pin given field by field: the ledger's address and code hash, optionally the chain id and registry. */
  function pinFromFields({ chainId, ledger, codeHash, registry }, source) {
    const hash = pinnedHash(codeHash, "code hash");
    if (hash === null) throw new Error("the ledger's code hash is required (0x + 64 hex digits)");
    let chain = null;
    if (chainId !== "" && chainId !== null && chainId !== undefined) {
      chain = Number(chainId);
      if (!Number.isSafeInteger(chain) || chain < 0) throw new Error(`the chain id ${JSON.stringify(chainId)} is not a number`);
    }
    return {
      source,
      chain_id: chain,
      ledger: { name: "AuditLedger", address: pinnedAddress(ledger, "ledger"), code_hash: hash },
      registry: registry ? { name: "ConsortiumRegistry", address: pinnedAddress(registry, "registry"), code_hash: null } : null,
      settlement: null,
    };
  }

  function describeContract(contract) {
    return `${contract.name} ${contract.address}` + (contract.code_hash ? ` (code hash ${contract.code_hash})` : "");
  }

  function describePin(pin) {
    const chain = pin.chain_id !== null ? `chain ${pin.chain_id}` : "the node's chain";
    const registry = pin.registry ? ", " + describeContract(pin.registry) : "";
    return `${describeContract(pin.ledger)}${registry} on ${chain}, pinned by ${pin.source}`;
  }

  // -- the node (JSON-RPC over fetch; every answer shared by the checks of one verification) -------------

  class Node {
    constructor(url) {
      this.url = url;
      this.cache = new Map();
      this.nextId = 1;
    }

    async call(method, params) {
      const key = method + JSON.stringify(params);
      if (!this.cache.has(key)) this.cache.set(key, this.send(method, params));
      return this.cache.get(key);
    }

    async send(method, params) {
      let response;
      try {
        response = await fetch(this.url, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ jsonrpc: "2.0", id: this.nextId++, method, params }),
          cache: "no-store",
          credentials: "omit",
          referrerPolicy: "no-referrer",
        });
      } catch (err) {
        throw new NodeUnreachable(
          `cannot reach the JSON-RPC node at ${this.url} (${err.message}): check the URL, that the node is ` +
            "running, that it allows this page's origin (CORS), and that the page was opened for this node",
        );
      }
      let body;
      try {
        body = await response.json();
      } catch (_) {
        throw new NodeUnreachable(`the node at ${this.url} answered ${method} with HTTP ${response.status}, not JSON-RPC`);
      }
      if (body && body.error) {
        throw new Failed(`the node refused ${method}: ${body.error.message || JSON.stringify(body.error)}`);
      }
      return body ? body.result : null;
    }

    chainId() {
      return this.call("eth_chainId", []).then((hex) => Number(BigInt(hex)));
    }

    head() {
      return this.call("eth_blockNumber", []).then((hex) => Number(BigInt(hex)));
    }

    ethCall(to, data, block) {
      return this.call("eth_call", [{ to, data }, block === undefined ? "latest" : "0x" + block.toString(16)]);
    }
  }

  const word = (types, values) => L.encodeAbiParameters(types.map((type) => ({ type })), values);
  const decode = (types, data) => L.decodeAbiParameters(types.map((type) => ({ type })), data);

  // -- the pinned deployment on this node (checked once per verification) ---------------------------------

  async function checkCode(node, pinned) {
    const code = await node.call("eth_getCode", [pinned.address, "latest"]);
    if (!code || code === "0x") throw new Failed(`there is no contract code at the pinned ${pinned.name} ${pinned.address}`);
    const actual = L.keccak256(code);
    if (pinned.code_hash === null) {
      throw new Failed(
        `the pin gives no code hash for ${pinned.name} (a version-1 deployment file): the browser checks code ` +
          `hashes only; pin its code hash ${actual} or use secureflow verify`,
      );
    }
    if (actual !== pinned.code_hash) {
      throw new Failed(
        `the code at the pinned ${pinned.name} ${pinned.address} has code hash ${actual}, the pin says ${pinned.code_hash}`,
      );
    }
    return actual;
  }

  async function checkPinnedCode(node, pin) {
    const chainId = await node.chainId();
    if (pin.chain_id !== null && chainId !== pin.chain_id) {
      throw new Failed(`the node serves chain id ${chainId}, the pinned deployment is on chain ${pin.chain_id}`);
    }
    const ledger = pin.ledger.address;
    const ledgerHash = await checkCode(node, pin.ledger);
    let bound;
    try {
      bound = L.getAddress(decode(["address"], await node.ethCall(ledger, SELECTORS.registry))[0]);
    } catch (err) {
      if (err instanceof NodeUnreachable) throw err;
      throw new Failed(`the pinned ledger ${ledger} does not answer registry() like the audit ledger: ${err.message}`);
    }
    if (pin.registry && bound !== pin.registry.address) {
      throw new Failed(`the pinned ledger ${ledger} is bound to registry ${bound}, not to the pinned registry ${pin.registry.address}`);
    }
    let registryText;
    if (pin.registry && pin.registry.code_hash) {
      registryText = `registry ${bound} (code hash ${await checkCode(node, pin.registry)}, as pinned)`;
    } else {
      registryText = `registry ${bound} (bound to it by the ledger's code)`;
    }
    return {
      ledger,
      registry: bound,
      detail: `the pinned ledger ${ledger} has code hash ${ledgerHash}, as pinned; it trusts ${registryText}`,
    };
  }

  // -- the receipt --------------------------------------------------------------------------------------

  const RECEIPT_FIELDS = [
    "version", "chain_id", "contract", "job_id", "seq", "record", "record_hash", "leaf", "proof",
    "batch_root", "batch_id", "tx_hash", "block_number", "block_hash", "anchorer", "status",
  ];

  /** The receipt, normalised as the Python model does (hex lower case, addresses checksummed), or a Failed. */
  function parseReceipt(data) {
    if (!data || typeof data !== "object" || Array.isArray(data)) throw new Failed("not a receipt: not a JSON object");
    const extra = Object.keys(data).filter((key) => !RECEIPT_FIELDS.includes(key));
    if (extra.length) throw new Failed(`not a receipt: unknown field(s) ${extra.join(", ")}`);
    const hex32 = (key, value = data[key]) => {
      if (typeof value !== "string" || !HEX32.test(value)) throw new Failed(`not a receipt: ${key} is not 0x + 64 hex digits`);
      return value.toLowerCase();
    };
    const int = (key, max) => {
      const value = data[key];
      if (!isInt(value) || value < 0 || BigInt(value) > max) throw new Failed(`not a receipt: ${key} is not an integer in range`);
      return value;
    };
    const version = data.version === undefined ? 2 : data.version;
    if (version !== 1 && version !== 2) throw new Failed("not a receipt: version is not 1 or 2");
    if (!data.record || typeof data.record !== "object" || Array.isArray(data.record)) throw new Failed("not a receipt: record is not an object");
    if (!Array.isArray(data.proof)) throw new Failed("not a receipt: proof is not a list");
    if (data.status !== "submitted" && data.status !== "confirmed") throw new Failed("not a receipt: status is not submitted or confirmed");
    let contract;
    try {
      contract = checksum(data.contract, "contract");
    } catch (err) {
      throw new Failed("not a receipt: " + err.message);
    }
    const receipt = {
      version,
      chain_id: int("chain_id", BigInt(MAX_SAFE)),
      contract,
      job_id: hex32("job_id"),
      seq: int("seq", UINT64_MAX),
      record: data.record,
      record_hash: hex32("record_hash"),
      leaf: hex32("leaf"),
      proof: data.proof.map((p, i) => hex32(`proof.${i}`, p)),
      batch_root: hex32("batch_root"),
      batch_id: data.batch_id === undefined || data.batch_id === null ? null : hex32("batch_id"),
      tx_hash: hex32("tx_hash"),
      block_number: int("block_number", BigInt(MAX_SAFE)),
      block_hash: hex32("block_hash"),
      anchorer: null,
      status: data.status,
    };
    if (data.anchorer !== undefined && data.anchorer !== null) {
      try {
        receipt.anchorer = checksum(data.anchorer, "anchorer");
      } catch (err) {
        throw new Failed("not a receipt: " + err.message);
      }
    }
    const stated = receipt.batch_id !== null && receipt.anchorer !== null;
    if (version === 2 && !stated) throw new Failed("not a receipt: a version-2 receipt states its batch_id and anchorer");
    if (version === 1 && (receipt.batch_id !== null || receipt.anchorer !== null)) {
      throw new Failed("not a receipt: a version-1 receipt has no batch_id or anchorer (those came with version 2)");
    }
    return receipt;
  }

  const RECORD_FIELDS = [
    "version", "job_id", "seq", "algorithm", "params_hash", "code_version", "parties", "status",
    "error_class", "started_at_ms", "finished_at_ms",
  ];
  const PARTY_FIELDS = ["party", "inputs", "outputs", "signature"];

  /** The step record's shape in canonical form (every field present, addresses checksummed): what
   * StepRecord.model_validate + "the record is in the step record's canonical form" check in Python. */
  function checkRecordShape(record) {
    const keys = Object.keys(record).sort();
    const missing = RECORD_FIELDS.filter((key) => !(key in record));
    const extra = keys.filter((key) => !RECORD_FIELDS.includes(key));
    if (extra.length) throw new Failed(`the record is not a valid step record (unknown field(s) ${extra.join(", ")})`);
    if (missing.length) throw new Failed(`the record is not in the step record's canonical form (missing ${missing.join(", ")})`);
    if (record.version !== 1) throw new Failed("the record is not a valid step record (version is not 1)");
    if (typeof record.job_id !== "string" || !/^0x[0-9a-f]{64}$/.test(record.job_id)) throw new Failed("the record is not a valid step record (job_id)");
    if (!isInt(record.seq) || record.seq < 0) throw new Failed("the record is not a valid step record (seq)");
    if (record.status !== "succeeded" && record.status !== "failed") throw new Failed("the record is not a valid step record (status)");
    if ((record.status === "failed") !== (record.error_class !== null)) {
      throw new Failed("the record is not a valid step record (error_class is required for a failed step and forbidden otherwise)");
    }
    if (!isInt(record.started_at_ms) || !isInt(record.finished_at_ms) || record.finished_at_ms < record.started_at_ms) {
      throw new Failed("the record is not a valid step record (timings)");
    }
    if (!Array.isArray(record.parties) || record.parties.length < 1 || record.parties.length > 32) {
      throw new Failed("the record is not a valid step record (parties)");
    }
    const seen = new Set();
    for (const [i, party] of record.parties.entries()) {
      if (!party || typeof party !== "object" || Object.keys(party).sort().join() !== [...PARTY_FIELDS].sort().join()) {
        throw new Failed(`the record is not in the step record's canonical form (parties.${i} has not exactly ${PARTY_FIELDS.join(", ")})`);
      }
      if (typeof party.party !== "string" || !L.isAddress(party.party, { strict: false })) {
        throw new Failed(`the record is not a valid step record (parties.${i}.party is not an address)`);
      }
      if (L.getAddress(party.party) !== party.party) throw new Failed("the record is not in the step record's canonical form (fields missing or coerced)");
      if (seen.has(party.party)) throw new Failed("the record is not a valid step record (a party appears twice in the record)");
      seen.add(party.party);
      if (party.signature !== null && (typeof party.signature !== "string" || !SIGNATURE.test(party.signature))) {
        throw new Failed(`the record is not a valid step record (parties.${i}.signature)`);
      }
    }
  }

  const canonicalBytes = (value) => L.stringToBytes(L.canonicalize(value));

  function leafHash(jobId, seq, recordHash) {
    return L.keccak256(L.keccak256(word(["bytes32", "uint64", "bytes32"], [jobId, BigInt(seq), recordHash])));
  }

  function nodeHash(a, b) {
    return L.keccak256(a <= b ? L.concat([a, b]) : L.concat([b, a])); // lower-case hex of equal length: byte order
  }

  // -- the checks -----------------------------------------------------------------------------------------

  const CHECKS = {
    async record_hash(r) {
      let canonical;
      try {
        canonical = canonicalBytes(r.record);
      } catch (err) {
        throw new Failed(`the record cannot be canonicalised (RFC 8785): ${err.message}`);
      }
      checkRecordShape(r.record);
      const computed = L.keccak256(canonical);
      if (computed !== r.record_hash) throw new Failed(`the record hashes to ${computed}, the receipt says record_hash ${r.record_hash}`);
      return `keccak256(RFC 8785 JSON of the record) = ${computed}`;
    },

    async leaf(r) {
      const { job_id: jobId, seq } = r.record;
      if (jobId !== r.job_id || seq !== r.seq) {
        throw new Failed(`the record is job ${jobId} step ${seq}, the receipt says job ${r.job_id} step ${r.seq}`);
      }
      const computed = leafHash(r.job_id, r.seq, r.record_hash);
      if (computed !== r.leaf) throw new Failed(`(job_id, seq, record_hash) gives leaf ${computed}, the receipt says leaf ${r.leaf}`);
      return `leaf(job_id, seq, record_hash) = ${computed}`;
    },

    async proof(r) {
      const reached = r.proof.reduce((computed, sibling) => nodeHash(computed, sibling), r.leaf);
      if (reached !== r.batch_root) {
        throw new Failed(`the ${r.proof.length}-step proof leads from the leaf to ${reached}, the receipt says batch_root ${r.batch_root}`);
      }
      return `the ${r.proof.length}-step proof leads from the leaf to batch_root ${r.batch_root}`;
    },

    async chain_id(r, ctx) {
      const chainId = await ctx.node.chainId();
      const pinned = ctx.pin.chain_id;
      if (pinned !== null && chainId !== pinned) throw new Failed(`the node serves chain id ${chainId}, the pinned deployment is on chain ${pinned}`);
      if (chainId !== r.chain_id) throw new Failed(`the node serves chain id ${chainId}, the receipt is for chain id ${r.chain_id}`);
      return `the node serves chain id ${chainId}` + (pinned !== null ? ", as pinned" : "");
    },

    async code_hash(_r, ctx) {
      return (await ctx.pinned()).detail;
    },

    async contract_pinned(r, ctx) {
      const pinned = ctx.pin.ledger.address;
      if (r.contract !== pinned) {
        throw new Failed(`the receipt names contract ${r.contract}, the pinned ledger is ${pinned} (pinned by ${ctx.pin.source})`);
      }
      return `the receipt names the pinned ledger ${pinned}`;
    },

    async root_anchored(r, ctx) {
      const { ledger } = await ctx.pinned();
      let count, block, anchorer;
      try {
        [count, block, anchorer] = await rootRecord(ctx, ledger, r.batch_root);
      } catch (err) {
        if (err instanceof NodeUnreachable) throw err;
        throw new Failed(`the pinned ledger ${ledger} does not answer rootRecord(root): ${err.message}`);
      }
      if (count === 0) throw new Failed(`root ${r.batch_root} is not anchored by the pinned ledger ${ledger}`);
      if (block !== r.block_number) throw new Failed(`root ${short(r.batch_root)} was anchored at block ${block}, the receipt says block ${r.block_number}`);
      const data = L.concat([SELECTORS.verify, L.encodeAbiParameters(
        [{ type: "bytes32" }, { type: "bytes32[]" }, { type: "bytes32" }], [r.leaf, r.proof, r.batch_root])]);
      const answer = await ctx.node.ethCall(ledger, data);
      if (typeof answer !== "string" || answer.length !== 66) throw new Failed(`${ledger} does not answer verify(leaf, proof, root) like the audit ledger`);
      if (BigInt(answer) === 0n) throw new Failed("the pinned ledger's verify(leaf, proof, root) returned false");
      return `root anchored at block ${block} (${count} records, anchorer ${anchorer}); on-chain verify(leaf, proof, root) is true`;
    },

    async block_canonical(r, ctx) {
      const batchId = (await batchEvent(r, ctx)).batchId;
      if (r.batch_id !== null && batchId !== r.batch_id) throw new Failed(`the chain anchored the root as batch ${batchId}, the receipt says batch ${r.batch_id}`);
      return `block ${r.block_number} is canonical; transaction ${short(r.tx_hash)} succeeded in it and emitted BatchAnchored(batch ${short(batchId)}, root ${short(r.batch_root)})`;
    },

    async anchor_role(r, ctx) {
      const pinned = await ctx.pinned();
      const { anchorer } = await batchEvent(r, ctx);
      if (r.anchorer !== null && r.anchorer !== anchorer) throw new Failed(`the chain's BatchAnchored names anchorer ${anchorer}, the receipt says ${r.anchorer}`);
      const rootAnchorer = (await rootRecord(ctx, pinned.ledger, r.batch_root))[2];
      if (rootAnchorer !== anchorer) throw new Failed(`the ledger records anchorer ${rootAnchorer} for the root, its event says ${anchorer}`);
      let held;
      try {
        const data = L.concat([SELECTORS.hasRole, word(["bytes32", "address"], [ANCHOR_ROLE, anchorer])]);
        held = decode(["bool"], await ctx.node.ethCall(pinned.registry, data, r.block_number))[0];
      } catch (err) {
        if (err instanceof NodeUnreachable) throw err;
        throw new Failed(
          `the node cannot answer hasRole(ANCHOR_ROLE, ${anchorer}) at block ${r.block_number} (it needs that block's state: an archive node for old blocks): ${err.message}`,
        );
      }
      if (!held) {
        throw new Failed(
          `anchorer ${anchorer} did not hold ANCHOR_ROLE in the pinned registry ${pinned.registry} at block ${r.block_number} (the state at the end of the anchor's block)`,
        );
      }
      return `anchorer ${anchorer} held ANCHOR_ROLE in the pinned registry ${pinned.registry} at block ${r.block_number}`;
    },

    async party_signatures(r, ctx) {
      const { ledger } = await ctx.pinned();
      const { status, parties, step_count: stepCount } = await onChainJob(ctx, ledger, r.job_id);
      if (status === 0 || parties.length === 0) throw new Failed(`the pinned ledger ${ledger} has no job ${r.job_id}, so no parties to have signed`);
      const problems = await signatureProblems(r.record, parties);
      const unsigned = Array.isArray(r.record.parties) && r.record.parties.every((p) => p && p.signature === null);
      if (problems.length && r.record.algorithm === CONTRIBUTION_ALGORITHM && unsigned) {
        return adoptedContribution(r, ctx, { status, stepCount });
      }
      if (problems.length) throw new Failed(problems.join("; ") + " (the job's parties on chain)");
      return `signed by every job party on chain (${parties.join(", ")})`;
    },

    async confirmations(r, ctx) {
      const head = await ctx.node.head();
      const confirmations = head - r.block_number + 1;
      if (confirmations < ctx.minConfirmations) {
        throw new Failed(`${confirmations} confirmation(s) (head ${head}, block ${r.block_number}), ${ctx.minConfirmations} required`);
      }
      return `${confirmations} confirmation(s) (head ${head}), ${ctx.minConfirmations} required`;
    },
  };

  /** An unsigned contribution record is the parties' only if the pinned Settlement set the job's weights from
   * its leaf (setWeights needs every party's approval); as secureflow verify checks it. */
  async function adoptedContribution(r, ctx, job) {
    if (job.status !== 2 && job.status !== 3) {
      throw new Failed(
        `an unsigned contribution record of a job that is ${STATUS_NAMES[job.status] || `status ${job.status}`} on chain, not closed: a contribution record follows the job's close; ${UNATTRIBUTED}`,
      );
    }
    if (r.seq < job.stepCount) {
      throw new Failed(
        `an unsigned contribution record at seq ${r.seq}, within the job's ${job.stepCount} steps: a contribution record follows the job's close, it is never one of its steps; ${UNATTRIBUTED}`,
      );
    }
    const settlement = await ctx.settlement();
    const leaf = leafHash(r.job_id, r.seq, r.record_hash);
    const answer = await ctx.node.ethCall(settlement, L.concat([SELECTORS.weightsOf, word(["bytes32"], [r.job_id])]));
    const info = L.decodeAbiParameters(
      [
        { type: "address[]" },
        { type: "uint16[]" },
        { type: "tuple", components: ["bytes32", "bytes32", "bytes32", "uint64", "address"].map((type) => ({ type })) },
      ],
      answer,
    )[2];
    const adopted = String(info[1]).toLowerCase();
    const block = Number(info[3]);
    if (adopted !== leaf) {
      const why = BigInt(adopted) === 0n ? "the job's weights are not set" : `the job's weights were set from another record (leaf ${short(adopted)})`;
      throw new Failed(
        `an unsigned contribution record the job's parties have not adopted (${why} on the pinned Settlement ${settlement}): ${UNATTRIBUTED}`,
      );
    }
    return `an unsigned contribution record adopted by every job party: the pinned Settlement ${settlement} set the job's weights from it at block ${block}, which needs each party's approval`;
  }

  async function checkPinnedSettlement(node, pin, ledger) {
    if (!pin.settlement) {
      throw new Failed(
        `the pin (${pin.source}) names no Settlement contract to attribute a contribution record to the job's parties: ${UNATTRIBUTED}; pin the deployment file, which names it`,
      );
    }
    const address = pin.settlement.address;
    await checkCode(node, pin.settlement);
    const bound = L.getAddress(decode(["address"], await node.ethCall(address, SELECTORS.ledger))[0]);
    if (bound !== ledger) throw new Failed(`the pinned Settlement ${address} is bound to ledger ${bound}, not to the pinned ${ledger}`);
    return address;
  }

  /** The job as the pinned ledger holds it (getJob and jobParties, at the latest block). */
  async function onChainJob(ctx, ledger, jobId) {
    const header = L.decodeAbiParameters(
      [{ type: "tuple", components: ["bytes32", "address", "uint8", "uint64", "uint64", "bytes32"].map((type) => ({ type })) }],
      await ctx.node.ethCall(ledger, L.concat([SELECTORS.getJob, word(["bytes32"], [jobId])])),
    )[0];
    const parties = decode(["address[]"], await ctx.node.ethCall(ledger, L.concat([SELECTORS.jobParties, word(["bytes32"], [jobId])])))[0];
    return {
      status: Number(header[2]),
      manifest_hash: String(header[0]).toLowerCase(),
      creator: L.getAddress(header[1]),
      step_count: Number(header[4]),
      final_root: String(header[5]).toLowerCase(),
      parties: parties.map((p) => L.getAddress(p)),
    };
  }

  async function rootRecord(ctx, ledger, root) {
    const answer = await ctx.node.ethCall(ledger, L.concat([SELECTORS.rootRecord, word(["bytes32"], [root])]));
    const [count, block, anchorer] = decode(["uint32", "uint64", "address"], answer);
    return [Number(count), Number(block), L.getAddress(anchorer)];
  }

  /** {batchId, anchorer} of the pinned ledger's BatchAnchored event for the receipt's root in its
   * transaction, after checking the block is canonical and the transaction succeeded in it. */
  async function batchEvent(r, ctx) {
    const node = ctx.node;
    const block = await node.call("eth_getBlockByNumber", ["0x" + r.block_number.toString(16), false]);
    if (!block || typeof block !== "object") throw new Failed(`the node has no block ${r.block_number} (head is ${await node.head()})`);
    if (String(block.hash || "").toLowerCase() !== r.block_hash) {
      throw new Failed(`the canonical block ${r.block_number} has hash ${block.hash}, the receipt says ${r.block_hash} (reorged out, or a wrong block)`);
    }
    const tx = await node.call("eth_getTransactionReceipt", [r.tx_hash]);
    if (!tx) throw new Failed(`the node does not know transaction ${r.tx_hash}`);
    const txBlockHash = String(tx.blockHash).toLowerCase();
    const txBlock = Number(BigInt(tx.blockNumber));
    if (txBlockHash !== r.block_hash || txBlock !== r.block_number) {
      throw new Failed(`transaction ${short(r.tx_hash)} is in block ${txBlock} (${short(txBlockHash)}), not in block ${r.block_number}`);
    }
    if (Number(BigInt(tx.status)) !== 1) throw new Failed(`transaction ${r.tx_hash} reverted (status ${Number(BigInt(tx.status))})`);
    const { ledger } = await ctx.pinned();
    for (const log of tx.logs || []) {
      const topics = (log.topics || []).map((t) => String(t).toLowerCase());
      if (L.getAddress(log.address) === ledger && topics.length === 4 && topics[0] === BATCH_ANCHORED_TOPIC && topics[2] === r.batch_root) {
        return { batchId: topics[1], anchorer: L.getAddress("0x" + topics[3].slice(26)) };
      }
    }
    throw new Failed(`transaction ${r.tx_hash} emitted no BatchAnchored event for this root from the pinned ledger ${ledger}`);
  }

  /** What keeps the record from being attributable to every one of the job's parties (empty: nothing). */
  async function signatureProblems(record, parties) {
    const entries = new Map();
    for (const entry of record.parties) {
      const party = L.getAddress(entry.party);
      entries.set(party, [...(entries.get(party) || []), entry]);
    }
    const problems = [];
    for (const party of parties) {
      const found = entries.get(party) || [];
      if (!found.length) problems.push(`job party ${party} has no part in the record`);
      else if (found.length > 1) problems.push(`job party ${party} appears ${found.length} times`);
      else if (found[0].signature === null) problems.push(`job party ${party} has not signed its part`);
      else {
        const signer = await recoverParty(record, found[0]);
        if (signer === null) problems.push(`the signature of job party ${party} is malformed`);
        else if (signer !== party) problems.push(`the part of job party ${party} is signed by ${signer}, not by ${party}`);
      }
    }
    const outsiders = [...entries.keys()].filter((p) => !parties.includes(p)).sort();
    if (outsiders.length) problems.push(`the record has parts of ${outsiders.join(", ")}, not a party of the job`);
    return problems;
  }

  /** Who signed one party's part (EIP-191 personal_sign of keccak256 of the record with only that part,
   * unsigned, in RFC 8785 JSON: ledger/signing.py), or null when the signature is malformed. */
  async function recoverParty(record, entry) {
    const payload = canonicalBytes({ ...record, parties: [{ ...entry, signature: null }] });
    try {
      const digest = L.hashMessage({ raw: L.keccak256(payload) });
      return L.getAddress(await L.recoverAddress({ hash: digest, signature: entry.signature }));
    } catch (_) {
      return null;
    }
  }

  // -- running them -------------------------------------------------------------------------------------

  /** One verification's context: the node's answers and the deployment check are shared by its receipts. */
  function context(rpcUrl, pin, minConfirmations) {
    const node = new Node(rpcUrl);
    let pinned = null;
    let settlement = null;
    const asFailed = (err) => {
      if (err instanceof NodeUnreachable || err instanceof Failed) throw err;
      throw new Failed(`${err.name}: ${err.message}`);
    };
    const ctx = {
      node,
      pin,
      minConfirmations,
      pinned() {
        if (pinned === null) pinned = checkPinnedCode(node, pin).catch(asFailed);
        return pinned;
      },
      settlement() {
        if (settlement === null) {
          settlement = ctx.pinned().then(({ ledger }) => checkPinnedSettlement(node, pin, ledger)).catch(asFailed);
        }
        return settlement;
      },
    };
    return ctx;
  }

  async function runChecks(data, ctx) {
    const results = {};
    const warnings = [];
    let receipt = null;
    try {
      receipt = parseReceipt(data);
      results.receipt_format = { name: "receipt_format", status: "passed", detail: `version ${receipt.version} receipt` };
      if (receipt.version === 1) warnings.push(V1_WARNING);
    } catch (err) {
      results.receipt_format = { name: "receipt_format", status: "failed", detail: err.message };
    }
    for (const name of CHECK_ORDER.slice(1)) {
      const blocked = DEPENDS_ON[name].filter((dep) => results[dep].status !== "passed");
      if (blocked.length || receipt === null) {
        results[name] = { name, status: "skipped", detail: `skipped: needs ${blocked.join(", ")}` };
        continue;
      }
      try {
        results[name] = { name, status: "passed", detail: await CHECKS[name](receipt, ctx) };
      } catch (err) {
        if (err instanceof NodeUnreachable) throw err;
        const detail = err instanceof Failed ? err.message : `${err.name}: ${err.message}`;
        results[name] = { name, status: "failed", detail };
      }
    }
    const checks = CHECK_ORDER.map((name) => results[name]);
    return {
      ok: checks.every((check) => check.status === "passed"),
      job_id: receipt ? receipt.job_id : typeof data?.job_id === "string" ? data.job_id : null,
      seq: receipt ? receipt.seq : isInt(data?.seq) ? data.seq : null,
      checks,
      warnings,
      pinned: describePin(ctx.pin),
    };
  }

  /**
   * Verify one receipt (a parsed JSON value) against the node at `rpcUrl` and the `pin`.
   * Resolves to { ok, job_id, seq, checks: [{name, status, detail}], warnings, pinned }; rejects only when
   * the node cannot be reached (an Error whose message says so).
   */
  async function verifyReceipt(data, rpcUrl, pin, minConfirmations = 1) {
    return runChecks(data, context(rpcUrl, pin, minConfirmations));
  }

  /** `verifyReceipt` for several receipts (e.g. an audit bundle's), sharing the node's answers. */
  async function verifyReceipts(receipts, rpcUrl, pin, minConfirmations = 1) {
    const ctx = context(rpcUrl, pin, minConfirmations);
    const verdicts = [];
    for (const receipt of receipts) verdicts.push(await runChecks(receipt, ctx));
    return verdicts;
  }

  // -- the audit bundle: the bundle-level checks of verify_bundle (ledger/verify.py) ----------------------

  const BUNDLE_CHECK_ORDER = [
    "records_covered",
    "seqs",
    "manifest_commitment",
    "params_commitments",
    "job_header",
    "consents",
    "job_closed",
    "step_count",
    "final_record",
  ];
  const CLOSED = 2;
  // the ledger store's job status (the bundle header's status) for each on-chain status
  const BUNDLE_STATUS_OF_CHAIN = { 1: ["created", "running"], 2: ["completed"], 3: ["failed", "cancelled"], 4: ["created"] };
  const V1_WHAT =
    "no batch id and anchorer of its own, so there was nothing to cross-check with the chain; both were taken " +
    "from the chain's BatchAnchored event";
  const UNSALTED_BUNDLE_WARNING =
    "the bundle carries no job secret: the salted manifest and parameter commitments could not be checked " +
    "(the manifest was checked against its unsalted hash, as bundles from before salted commitments; " +
    "params_hash not at all)";

  /** A file that is not an audit bundle (secureflow verify refuses it too: nothing was verified). */
  class BundleFormatError extends Error {}

  const statusName = (status) => STATUS_NAMES[status] || `status ${status}`;
  const isSeq = (value) => isInt(value); // an integer, not a boolean (Python: int and not bool)

  /** Python's repr() of a JSON value (the details of verify.py name values as Python prints them). */
  function pyRepr(value) {
    if (value === null || value === undefined) return "None";
    if (value === true) return "True";
    if (value === false) return "False";
    if (typeof value === "number") return String(value);
    if (typeof value === "string") {
      const quote = value.includes("'") && !value.includes('"') ? '"' : "'";
      let out = "";
      for (const ch of value) {
        const code = ch.codePointAt(0);
        if (ch === "\\") out += "\\\\";
        else if (ch === quote) out += "\\" + quote;
        else if (ch === "\n") out += "\\n";
        else if (ch === "\r") out += "\\r";
        else if (ch === "\t") out += "\\t";
        else if (code < 0x20 || code === 0x7f) out += "\\x" + code.toString(16).padStart(2, "0");
        else out += ch;
      }
      return quote + out + quote;
    }
    if (Array.isArray(value)) return "[" + value.map(pyRepr).join(", ") + "]";
    return "{" + Object.entries(value).map(([k, v]) => pyRepr(k) + ": " + pyRepr(v)).join(", ") + "}";
  }

  /** Python's str() of a JSON value. */
  const pyStr = (value) => (typeof value === "string" ? value : pyRepr(value));

  /** Python's == of two JSON values (dicts by keys, 1 == 1.0 == True). */
  function pyEqual(a, b) {
    const numeric = (v) => typeof v === "number" || typeof v === "boolean";
    if (numeric(a) && numeric(b)) return Number(a) === Number(b);
    if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return a === b;
    if (Array.isArray(a) !== Array.isArray(b)) return false;
    if (Array.isArray(a)) return a.length === b.length && a.every((item, i) => pyEqual(item, b[i]));
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && pyEqual(a[key], b[key]));
  }

  /** The seq as a Python dict key: True and False are 1 and 0. */
  const seqKey = (value) => (typeof value === "boolean" ? Number(value) : value);

  const BUNDLE_FIELDS = ["version", "manifest", "job_secret", "job", "records", "receipts"];
  const JOB_FIELDS = ["job_id", "manifest_hash", "creator", "parties", "status", "chain_status", "created_tx_hash"];

  /** The bundle, normalised as the Python model AuditBundle does (hex lower case, addresses checksummed),
   * with its receipts parsed; a BundleFormatError when it is not an audit bundle. */
  function parseBundle(data) {
    const bad = (why) => new BundleFormatError("not an audit bundle: " + why);
    const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);
    if (!isObject(data)) throw bad("not a JSON object");
    const extra = Object.keys(data).filter((key) => !BUNDLE_FIELDS.includes(key));
    if (extra.length) throw bad(`unknown field(s) ${extra.join(", ")}`);
    const version = data.version === undefined ? 2 : data.version;
    if (version !== 1 && version !== 2) throw bad("version is not 1 or 2");
    const hex32 = (what, value) => {
      if (typeof value !== "string" || !HEX32.test(value)) throw bad(`${what} is not 0x + 64 hex digits`);
      return value.toLowerCase();
    };
    const address = (what, value) => {
      try {
        return checksum(value, what);
      } catch (err) {
        throw bad(err.message);
      }
    };
    if (data.manifest !== undefined && data.manifest !== null && !isObject(data.manifest)) throw bad("manifest is not an object");
    const job = data.job;
    if (!isObject(job)) throw bad("job is not an object");
    const jobExtra = Object.keys(job).filter((key) => !JOB_FIELDS.includes(key));
    if (jobExtra.length) throw bad(`unknown field(s) job.${jobExtra.join(", job.")}`);
    if (!Array.isArray(job.parties)) throw bad("job.parties is not a list");
    for (const key of ["status", "chain_status"]) if (typeof job[key] !== "string") throw bad(`job.${key} is not a string`);
    if (job.created_tx_hash !== undefined && job.created_tx_hash !== null) hex32("job.created_tx_hash", job.created_tx_hash);
    if (!Array.isArray(data.records) || !data.records.every(isObject)) throw bad("records is not a list of objects");
    if (!Array.isArray(data.receipts)) throw bad("receipts is not a list");
    const receipts = data.receipts.map((receipt, i) => {
      try {
        return parseReceipt(receipt);
      } catch (err) {
        throw bad(`receipts.${i}: ${err.message.replace(/^not a receipt: /, "")}`);
      }
    });
    return {
      version,
      manifest: isObject(data.manifest) ? data.manifest : null,
      job_secret: data.job_secret === undefined || data.job_secret === null ? null : hex32("job_secret", data.job_secret),
      job: {
        job_id: hex32("job.job_id", job.job_id),
        manifest_hash: hex32("job.manifest_hash", job.manifest_hash),
        creator: address("job.creator", job.creator),
        parties: job.parties.map((party, i) => address(`job.parties.${i}`, party)),
        status: job.status,
        chain_status: job.chain_status,
      },
      records: data.records,
      receipts,
    };
  }

  /** keccak256(job_secret || RFC 8785 JSON of value): the salted commitment (ledger/records.py commitment). */
  function commitment(value, secret) {
    return L.keccak256(L.concat([secret, L.bytesToHex(canonicalBytes(value))]));
  }

  function recordsCovered(bundle) {
    const name = "records_covered";
    const receipted = new Map();
    for (const r of bundle.receipts) if (r.job_id === bundle.job.job_id) receipted.set(r.seq, r);
    const foreign = bundle.receipts.filter((r) => r.job_id !== bundle.job.job_id).map((r) => r.seq);
    const problems = [];
    if (foreign.length) problems.push(`${foreign.length} receipt(s) of another job (seq ${pyRepr(foreign.slice(0, 10))})`);
    const uncovered = [];
    const differing = [];
    for (const record of bundle.records) {
      const seq = record.seq;
      const receipt = isInt(seqKey(seq)) ? receipted.get(seqKey(seq)) : undefined;
      if (receipt === undefined) uncovered.push(seq === undefined ? null : seq);
      else if (!pyEqual(receipt.record, record)) differing.push(seq);
    }
    if (uncovered.length) problems.push(`${uncovered.length} record(s) without a receipt (not anchored yet?): seq ${pyRepr(uncovered.slice(0, 10))}`);
    if (differing.length) problems.push(`${differing.length} record(s) differ from their receipt's record: seq ${pyRepr(differing.slice(0, 10))}`);
    if (receipted.size !== bundle.receipts.length - foreign.length || bundle.receipts.length > bundle.records.length) {
      problems.push("receipts repeat a step or carry records missing from the bundle");
    }
    if (problems.length) return { name, status: "failed", detail: problems.join("; ") };
    return { name, status: "passed", detail: `all ${bundle.records.length} records have a receipt` };
  }

  function seqsCheck(bundle) {
    const name = "seqs";
    const seqs = bundle.records.map((record) => record.seq);
    if (!seqs.every(isSeq)) return { name, status: "failed", detail: "a record has no integer seq" };
    const counts = new Map();
    for (const seq of seqs) counts.set(seq, (counts.get(seq) || 0) + 1);
    const n = seqs.length;
    const problems = [];
    const missing = [];
    for (let s = 0; s < n; s++) if (!counts.has(s)) missing.push(s);
    if (missing.length) problems.push(`seq ${missing.slice(0, 10).join(", ")} ${missing.length === 1 ? "is" : "are"} missing`);
    const keys = [...counts.keys()].sort((a, b) => a - b);
    const repeated = keys.filter((s) => counts.get(s) > 1);
    if (repeated.length) problems.push(`seq ${repeated.slice(0, 10).join(", ")} repeated`);
    const beyond = keys.filter((s) => s >= n);
    if (beyond.length) problems.push(`seq ${beyond.slice(0, 10).join(", ")} beyond ${n - 1}`);
    if (problems.length) return { name, status: "failed", detail: `the records' seqs are not 0..${n - 1}: ` + problems.join("; ") };
    return { name, status: "passed", detail: `the records' seqs are 0..${n - 1}, each once` };
  }

  function manifestCommitment(bundle) {
    const name = "manifest_commitment";
    if (bundle.manifest === null) return { name, status: "skipped", detail: "skipped: the bundle carries no manifest" };
    const secret = bundle.job_secret;
    const rule =
      secret !== null
        ? "keccak256(job secret || RFC 8785 JSON of the manifest)"
        : "keccak256(RFC 8785 JSON of the manifest), unsalted: the bundle carries no job secret";
    let computed;
    try {
      computed = secret !== null ? commitment(bundle.manifest, secret) : L.keccak256(canonicalBytes(bundle.manifest));
    } catch (err) {
      return { name, status: "failed", detail: `the manifest cannot be canonicalised: ${err.message}` };
    }
    if (computed !== bundle.job.manifest_hash) {
      return {
        name,
        status: "failed",
        detail:
          `the bundle's manifest does not give the job's manifest hash ${bundle.job.manifest_hash}: ` +
          `${rule} = ${computed} (the manifest or the job secret is not the job's)`,
      };
    }
    return { name, status: "passed", detail: `${rule} is the job's manifest hash ${computed}` };
  }

  function paramsCommitments(bundle, manifest) {
    const name = "params_commitments";
    if (manifest.status !== "passed" || bundle.manifest === null || bundle.job_secret === null) {
      return { name, status: "skipped", detail: "skipped: needs manifest_commitment" };
    }
    const steps = bundle.manifest.steps;
    if (!Array.isArray(steps)) return { name, status: "failed", detail: "the manifest has no list of steps" };
    const differing = [];
    let checked = 0;
    for (const record of bundle.records) {
      const seq = record.seq;
      if (!isSeq(seq) || seq < 0 || seq >= steps.length) continue; // not a compute step (a contribution record follows them)
      const step = steps[seq];
      const isObject = step !== null && typeof step === "object" && !Array.isArray(step);
      const params = isObject ? (Object.hasOwn(step, "params") ? step.params : {}) : null;
      let expected;
      try {
        expected = commitment(params, bundle.job_secret);
      } catch (_) {
        differing.push(`${seq} (its manifest parameters cannot be canonicalised)`);
        continue;
      }
      checked += 1;
      if (record.params_hash !== expected) differing.push(String(seq));
    }
    if (differing.length) {
      return {
        name,
        status: "failed",
        detail: `the params_hash of seq ${differing.slice(0, 10).join(", ")} is not the commitment of its step's parameters in the manifest under the job secret`,
      };
    }
    return {
      name,
      status: "passed",
      detail: `the params_hash of all ${checked} compute record(s) is keccak256(job secret || RFC 8785 JSON of the step's params in the manifest)`,
    };
  }

  function jobHeader(bundle, job, ledger) {
    const header = bundle.job;
    if (job.status === 0) throw new Failed(`the pinned ledger ${ledger} has no job ${header.job_id}`);
    const differences = [];
    if (header.manifest_hash !== job.manifest_hash) differences.push(`manifest hash: the bundle says ${header.manifest_hash}, the chain ${job.manifest_hash}`);
    if (header.creator !== job.creator) differences.push(`creator: the bundle says ${header.creator}, the chain ${job.creator}`);
    if (header.parties.length !== job.parties.length || header.parties.some((p, i) => p !== job.parties[i])) {
      differences.push(`parties: the bundle says ${pyRepr(header.parties)}, the chain ${pyRepr(job.parties)}`);
    }
    const chainStatus = statusName(job.status);
    if (!(BUNDLE_STATUS_OF_CHAIN[job.status] || []).includes(header.status)) {
      differences.push(`status: the bundle says ${pyRepr(header.status)}, the chain's job is ${chainStatus}`);
    }
    if (differences.length) throw new Failed("the job header differs from the pinned ledger's job: " + differences.join("; "));
    return (
      `the pinned ledger holds the job: creator ${job.creator}, manifest hash ${short(job.manifest_hash)}, ` +
      `parties ${job.parties.join(", ")}, ${chainStatus} (the bundle says ${pyRepr(header.status)})`
    );
  }

  async function consents(bundle, job, ctx) {
    const { ledger } = await ctx.pinned();
    const missing = [];
    for (const party of job.parties) {
      const answer = await ctx.node.ethCall(ledger, L.concat([SELECTORS.hasConsented, word(["bytes32", "address"], [bundle.job.job_id, party])]));
      if (!decode(["bool"], answer)[0]) missing.push(party);
    }
    if (missing.length) throw new Failed(`no consent on chain from job party ${missing.join(", ")}`);
    return `every job party consented on chain (${job.parties.length} parties)`;
  }

  const seqAtLeast = (record, seq) => isSeq(record.seq) && record.seq >= seq;

  function closeChecks(bundle, job, ctx, results) {
    return {
      async job_closed() {
        if (job.status !== CLOSED) {
          throw new Failed(
            `the chain's job is ${statusName(job.status)}, not Closed: the chain does not say the job is complete (closeJob with its step count and final root)`,
          );
        }
        return `the chain's job is Closed with step count ${job.step_count}, final root ${short(job.final_root)}`;
      },

      async step_count() {
        let records = bundle.records;
        let after = [];
        if (job.status === CLOSED) {
          // a closed job's steps are its first step_count records; what follows the close can only be the
          // settlement's contribution records (attributed by party_signatures)
          records = bundle.records.filter((r) => !seqAtLeast(r, job.step_count));
          after = bundle.records.filter((r) => seqAtLeast(r, job.step_count));
        }
        const n = records.length;
        const problems = [];
        if (job.step_count !== n) problems.push(`the bundle has ${n} record(s), the chain's step count ${job.step_count}`);
        const strays = after.filter((r) => r.algorithm !== CONTRIBUTION_ALGORITHM).map((r) => pyStr(r.seq));
        const inside = records.filter((r) => r.algorithm === CONTRIBUTION_ALGORITHM).map((r) => pyStr(r.seq));
        if (inside.length) {
          const what = inside.length === 1 ? "is a contribution record" : "are contribution records";
          problems.push(`seq ${inside.slice(0, 10).join(", ")} ${what} within the job's steps: contribution records follow the close`);
        }
        if (strays.length) {
          const one = strays.length === 1;
          problems.push(
            `seq ${strays.slice(0, 10).join(", ")} follow${one ? "s" : ""} the job's last step (step count ${job.step_count}) and ` +
              `${one ? "is" : "are"} no contribution record: only a settlement's contribution records may follow a job's close`,
          );
        }
        if (bundle.manifest !== null && results.manifest_commitment.status === "passed") {
          const steps = bundle.manifest.steps;
          if (!Array.isArray(steps)) problems.push("the manifest has no list of steps");
          else if (steps.length !== job.step_count) problems.push(`the manifest has ${steps.length} step(s), the chain's step count ${job.step_count}`);
        }
        if (problems.length) throw new Failed(problems.join("; "));
        const manifest = bundle.manifest !== null ? " and the manifest's steps" : "";
        if (!after.length) return `the chain's step count ${job.step_count} is the number of records${manifest}`;
        const one = after.length === 1;
        return (
          `the bundle's ${n} compute records are the chain's step count${manifest}; ${after.length} ` +
          `contribution record${one ? "" : "s"} follow${one ? "s" : ""} the close`
        );
      },

      async final_record() {
        if (job.status !== CLOSED) throw new Failed(`the job is ${statusName(job.status)}: it has no final root`);
        const n = job.step_count;
        if (n === 0) {
          if (BigInt(job.final_root) !== 0n) throw new Failed(`a job closed with no steps has final root ${job.final_root}`);
          return "the job was closed with no steps (final root zero)";
        }
        const last = n - 1;
        const record = bundle.records.find((r) => pyEqual(r.seq === undefined ? null : r.seq, last));
        const receipt =
          record === undefined
            ? undefined
            : bundle.receipts.find((r) => r.seq === last && r.job_id === bundle.job.job_id && pyEqual(r.record, record));
        if (record === undefined || receipt === undefined) {
          throw new Failed(`the bundle has no receipted record of seq ${last}, the job's last step on chain`);
        }
        let recordHash;
        try {
          recordHash = L.keccak256(canonicalBytes(record));
        } catch (err) {
          throw new Failed(`the record of seq ${last} cannot be canonicalised: ${err.message}`);
        }
        const leaf = leafHash(bundle.job.job_id, last, recordHash);
        const reached = receipt.proof.reduce((computed, sibling) => nodeHash(computed, sibling), leaf);
        if (reached !== job.final_root) {
          throw new Failed(`the record of seq ${last} proves to root ${reached}, the job was closed with final root ${job.final_root}`);
        }
        const [count] = await rootRecord(ctx, (await ctx.pinned()).ledger, job.final_root);
        if (count === 0) throw new Failed(`the job's final root ${job.final_root} is not anchored by the pinned ledger`);
        return `the record of seq ${last} is proven in the job's final root ${short(job.final_root)}`;
      },
    };
  }

  /** The bundle checks (and the job on chain, or null when the deployment does not hold on this node). */
  async function bundleChecks(bundle, ctx) {
    const order = bundle.job_secret !== null ? BUNDLE_CHECK_ORDER : BUNDLE_CHECK_ORDER.filter((name) => name !== "params_commitments");
    const results = {
      records_covered: recordsCovered(bundle),
      seqs: seqsCheck(bundle),
      manifest_commitment: manifestCommitment(bundle),
    };
    if (order.includes("params_commitments")) results.params_commitments = paramsCommitments(bundle, results.manifest_commitment);
    const onChain = order.slice(order.indexOf("job_header"));
    let pinned;
    let job;
    try {
      pinned = await ctx.pinned();
      job = await onChainJob(ctx, pinned.ledger, bundle.job.job_id);
    } catch (err) {
      if (!(err instanceof Failed)) throw err;
      for (const name of onChain) results[name] = { name, status: "skipped", detail: `skipped: needs code_hash (${err.message})` };
      return [order.map((name) => results[name]), null];
    }
    const run = async (name, check) => {
      try {
        results[name] = { name, status: "passed", detail: await check() };
      } catch (err) {
        if (err instanceof NodeUnreachable) throw err;
        results[name] = { name, status: "failed", detail: err instanceof Failed ? err.message : `${err.name}: ${err.message}` };
      }
    };
    await run("job_header", async () => jobHeader(bundle, job, pinned.ledger));
    if (job.status === 0) {
      for (const name of onChain.slice(1)) {
        results[name] = { name, status: "skipped", detail: `skipped: the pinned ledger has no job ${bundle.job.job_id}` };
      }
      return [order.map((name) => results[name]), job];
    }
    await run("consents", () => consents(bundle, job, ctx));
    for (const [name, check] of Object.entries(closeChecks(bundle, job, ctx, results))) await run(name, check);
    return [order.map((name) => results[name]), job];
  }

  /** Seqs of the unsigned contribution records after the close that the job's parties did not adopt. */
  function unadoptedSeqs(verdicts, job) {
    if (job === null || job.status !== CLOSED) return [];
    const out = [];
    for (const verdict of verdicts) {
      const failed = verdict.checks.filter((c) => c.status === "failed").map((c) => c.name);
      if (verdict.seq === null || verdict.seq < job.step_count || failed.length !== 1 || failed[0] !== "party_signatures") continue;
      if (verdict.checks.find((c) => c.name === "party_signatures").detail.includes(UNATTRIBUTED)) out.push(verdict.seq);
    }
    return out;
  }

  /** BundleVerdict.summary() of ledger/verify.py. */
  function bundleSummary(verdict) {
    const valid = verdict.receipts.filter((v) => v.ok).length;
    let text = `job ${verdict.job_id}: ${verdict.ok ? "VALID" : "INVALID"}, ${valid}/${verdict.receipts.length} receipts valid`;
    if (verdict.unadopted.length) {
      text += `, ${verdict.unadopted.length} unadopted contribution record(s) (seq ${verdict.unadopted.slice(0, 10).join(", ")})`;
    }
    const byCheck = new Map();
    for (const receipt of verdict.invalid_receipts) {
      for (const check of receipt.checks.filter((c) => c.status === "failed")) {
        byCheck.set(check.name, [...(byCheck.get(check.name) || []), pyStr(receipt.seq)]);
      }
    }
    if (byCheck.size) {
      text += " (failed: " + [...byCheck].map(([name, seqs]) => `${name} at seq ${seqs.slice(0, 10).join(", ")}`).join("; ") + ")";
    }
    const bad = verdict.checks.filter((c) => c.status === "failed").map((c) => c.name);
    if (bad.length) text += `; bundle checks failed: ${bad.join(", ")}`;
    return text;
  }

  /**
   * Verify an audit bundle (a parsed JSON value) as `secureflow verify BUNDLE.json` does: every receipt with
   * the receipt checks, then the bundle checks (BUNDLE_CHECK_ORDER; params_commitments only with a job secret).
   * Resolves to { ok, job_id, checks, receipts: [receipt verdicts], invalid_receipts, unadopted, warnings,
   * pinned, summary }; rejects with a BundleFormatError (name "BundleFormatError") when the value is not an
   * audit bundle, and when the node cannot be reached.
   */
  async function verifyBundle(data, rpcUrl, pin, minConfirmations = 1) {
    const bundle = parseBundle(data);
    const ctx = context(rpcUrl, pin, minConfirmations);
    const receipts = [];
    for (const receipt of data.receipts) receipts.push(await runChecks(receipt, ctx));
    const [checks, job] = await bundleChecks(bundle, ctx);
    const unadopted = unadoptedSeqs(receipts, job);
    const warnings = [];
    if (unadopted.length) {
      warnings.push(
        `${unadopted.length} contribution record(s) after the job's close not attributed to the job's parties ` +
          `(seq ${unadopted.slice(0, 10).join(", ")}; see its party_signatures check): a settlement proposal they did not ` +
          "(yet) approve on the Settlement contract, or no Settlement pinned; not one of the job's steps",
      );
    }
    const versions = [...new Set(bundle.receipts.map((r) => r.version))].sort();
    const old = bundle.receipts.filter((r) => r.version === 1).map((r) => String(r.seq));
    if (old.length) warnings.push(`${old.length} version-1 receipt(s) (seq ${old.slice(0, 10).join(", ")}): each states ${V1_WHAT}`);
    for (const verdict of receipts) {
      for (const warning of verdict.warnings) if (warning !== V1_WARNING && !warnings.includes(warning)) warnings.push(warning);
    }
    if (bundle.version === 1 && !(versions.length === 1 && versions[0] === 1)) warnings.push("a version-1 bundle carrying version-2 receipts");
    if (bundle.job_secret === null) warnings.push(UNSALTED_BUNDLE_WARNING);
    const invalid = receipts.filter((v) => !v.ok && !unadopted.includes(v.seq));
    const verdict = {
      ok: checks.every((check) => check.status === "passed") && invalid.length === 0,
      job_id: bundle.job.job_id,
      checks,
      receipts,
      invalid_receipts: invalid,
      unadopted,
      warnings,
      pinned: describePin(pin),
    };
    verdict.summary = bundleSummary(verdict);
    return verdict;
  }

  window.SecureflowVerify = Object.freeze({
    CHECK_ORDER,
    BUNDLE_CHECK_ORDER,
    BundleFormatError,
    pinFromDeployment,
    pinFromFields,
    verifyReceipt,
    verifyReceipts,
    verifyBundle,
  });
})();
