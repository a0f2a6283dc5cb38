// secureflow: the auditors' page. Plain browser JavaScript, no build step; verification in the browser is
// verify.js (on the bundled, pinned libraries of verify-lib.js).
//
// The API key lives in this tab's sessionStorage only: it is sent as "Authorization: Bearer <key>" to our
// own origin and never put in a URL, a log or the page. Every datum is rendered as text (textContent /
// text nodes), never as HTML. "Verify in my browser" calls only the JSON-RPC node the auditor chose (the
// page is opened as /ui?node=URL, and the server's CSP allows that origin only then), never this API.
"use strict";

(() => {
  const KEY_STORE = "secureflow.apiKey";
  const JOB_ID = /^0x[0-9a-fA-F]{64}$/;
  const JOBS_PAGE = 20;
  const STEPS_PAGE = 50;
  const VERIFIABLE = new Set(["submitted", "confirmed"]);
  const HINTS = {
    401: "The key is missing, unknown or revoked: paste a valid API key above.",
    403: "This key's role may not do this: use a key with another role, or ask an admin.",
    404: "Not found, or not visible to this key (members see only the jobs they are party to).",
  };

  const BV_STORE = "secureflow.browserVerify."; // the pin and the receipt (public data), kept across the reload
  const BV_FIELDS = ["bv-deployment", "bv-chain-id", "bv-ledger", "bv-code-hash", "bv-registry", "bv-min-confirmations", "bv-receipt"];

  const state = { jobsOffset: 0, jobsStatus: "", job: null, stepCursors: [null], stepsPage: 0, generation: 0 };

  const $ = (id) => document.getElementById(id);

  // A DOM element; strings among the children become text nodes (so data can never become markup).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function short(hex) {
    if (typeof hex !== "string" || hex.length <= 18) return hex === null || hex === undefined ? "" : String(hex);
    return hex.slice(0, 10) + "\u2026" + hex.slice(-6);
  }

  function hash(value) {
    if (value === null || value === undefined || value === "") return el("span", { class: "muted" }, "\u2013");
    return el("code", { title: String(value) }, short(String(value)));
  }

  function when(value) {
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? String(value ?? "") : date.toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }

  function statusBadge(status) {
    return el("span", { class: "status status-" + String(status).replace(/[^a-z_]/g, ""), "data-status": status }, status);
  }

  // -- the API ------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, requestId) {
      super(message);
      this.status = status;
      this.code = code;
      this.requestId = requestId;
    }
  }

  async function api(method, path, body) {
    const key = sessionStorage.getItem(KEY_STORE);
    if (!key) throw new ApiError(0, "no_key", "paste an API key first", "");
    const headers = { Accept: "application/json", Authorization: "Bearer " + key };
    const init = { method, headers, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "network_error", "could not reach the API (" + err.message + "): is it running?", "");
    }
    const requestId = response.headers.get("X-Request-ID") || "";
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const error = data && typeof data === "object" ? data.error : null;
      if (error && typeof error.message === "string") {
        throw new ApiError(response.status, String(error.code || "error"), error.message, String(error.request_id || requestId));
      }
      throw new ApiError(response.status, "http_" + response.status, text.slice(0, 300) || response.statusText, requestId);
    }
    if (data === null) throw new ApiError(response.status, "bad_response", "the API's answer is not JSON", requestId);
    return data;
  }

  // -- errors -------------------------------------------------------------------------------------------

  function errorNodes(err, context) {
    if (!(err instanceof ApiError)) {
      return [el("strong", {}, (context ? context + ": " : "") + "unexpected error"), el("p", {}, String(err))];
    }
    const title = (context ? context + ": " : "") + (err.status ? err.status + " " : "") + err.code;
    return [
      el("strong", { class: "error-title" }, title),
      el("p", { class: "error-message" }, err.message),
      HINTS[err.status] ? el("p", { class: "error-hint" }, HINTS[err.status]) : null,
      err.requestId ? el("p", { class: "muted" }, "request id: ", el("code", { class: "request-id" }, err.requestId)) : null,
    ];
  }

  function showError(err, context) {
    const box = $("error");
    box.replaceChildren(...errorNodes(err, context).filter(Boolean));
    box.dataset.status = err instanceof ApiError ? String(err.status) : "";
    box.hidden = false;
  }

  function clearError() {
    const box = $("error");
    box.hidden = true;
    box.replaceChildren();
    delete box.dataset.status;
  }

  // -- the key ------------------------------------------------------------------------------------------

  async function start() {
    const generation = ++state.generation;
    clearError();
    $("whoami").textContent = "checking the key\u2026";
    try {
      const me = await api("GET", "/v1/me");
      if (generation !== state.generation) return;
      $("whoami").replaceChildren(
        "Using the key of ",
        el("strong", { id: "whoami-name" }, me.name),
        " (role ",
        el("strong", { id: "whoami-role" }, me.role),
        ", ",
        hash(me.address),
        ")",
        me.role === "member" ? " \u2013 members see only the jobs they are party to." : "",
      );
      $("key-forget").hidden = false;
      route();
    } catch (err) {
      if (generation !== state.generation) return;
      $("whoami").textContent = "";
      hideData();
      if (err instanceof ApiError && err.status === 401) sessionStorage.removeItem(KEY_STORE);
      showError(err, "the key was refused");
    }
  }

  function hideData() {
    $("jobs-section").hidden = true;
    $("job-section").hidden = true;
    $("jobs-body").replaceChildren();
    $("steps-body").replaceChildren();
    $("job-meta").replaceChildren();
  }

  function useKey(event) {
    event.preventDefault();
    const input = $("key-input");
    const key = input.value.trim();
    input.value = "";
    if (!key) {
      showError(new ApiError(0, "no_key", "paste an API key first", ""));
      return;
    }
    sessionStorage.setItem(KEY_STORE, key);
    start();
  }

  function forgetKey() {
    state.generation++;
    sessionStorage.removeItem(KEY_STORE);
    hideData();
    clearError();
    $("whoami").textContent = "The key is forgotten.";
    $("key-forget").hidden = true;
    if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  }

  // -- navigation (#job/<id> opens a job; anything else lists the jobs) -----------------------------------

  function route() {
    if (!sessionStorage.getItem(KEY_STORE)) return;
    const match = /^#job\/(0x[0-9a-fA-F]{64})$/.exec(location.hash);
    if (match) showJob(match[1].toLowerCase());
    else showJobs();
  }

  // -- jobs ---------------------------------------------------------------------------------------------

  function showJobs() {
    state.job = null;
    $("job-section").hidden = true;
    $("jobs-section").hidden = false;
    loadJobs();
  }

  async function loadJobs() {
    const generation = ++state.generation;
    clearError();
    const query = new URLSearchParams({ limit: String(JOBS_PAGE), offset: String(state.jobsOffset) });
    if (state.jobsStatus) query.set("status", state.jobsStatus);
    try {
      const page = await api("GET", "/v1/jobs?" + query.toString());
      if (generation !== state.generation) return;
      renderJobs(page);
    } catch (err) {
      if (generation !== state.generation) return;
      showError(err, "listing the jobs");
    }
  }

  function renderJobs(page) {
    const items = Array.isArray(page.items) ? page.items : [];
    $("jobs-body").replaceChildren(
      ...items.map((job) =>
        el(
          "tr",
          { "data-job-id": job.job_id },
          el("td", {}, JOB_ID.test(job.job_id) ? el("a", { href: "#job/" + job.job_id, title: job.job_id, class: "job-link" }, short(job.job_id)) : short(job.job_id)),
          el("td", {}, statusBadge(job.status), job.stuck ? el("span", { class: "status status-stuck", title: "running, but nothing moved for a while" }, "stuck") : null),
          el("td", {}, statusBadge(job.chain_status)),
          el("td", {}, ...(job.parties || []).map((party) => el("div", {}, hash(party)))),
          el("td", {}, when(job.created_at)),
        ),
      ),
    );
    $("jobs-empty").hidden = items.length > 0;
    $("jobs-newer").disabled = state.jobsOffset === 0;
    $("jobs-older").disabled = page.next_offset === null || page.next_offset === undefined;
    $("jobs-older").dataset.next = page.next_offset ?? "";
    $("jobs-range").textContent = items.length ? `jobs ${state.jobsOffset + 1}\u2013${state.jobsOffset + items.length}` : "";
  }

  // -- one job and its steps ----------------------------------------------------------------------------

  async function showJob(jobId) {
    state.job = jobId;
    state.stepCursors = [null];
    state.stepsPage = 0;
    $("jobs-section").hidden = true;
    $("job-section").hidden = false;
    $("job-meta").replaceChildren();
    $("steps-body").replaceChildren();
    const generation = ++state.generation;
    clearError();
    try {
      const job = await api("GET", "/v1/jobs/" + encodeURIComponent(jobId));
      if (generation !== state.generation) return;
      renderJob(job);
    } catch (err) {
      if (generation !== state.generation) return;
      showError(err, "opening the job");
      return;
    }
    loadSteps();
  }

  function renderJob(job) {
    const rows = [
      ["job", el("code", { id: "job-id" }, job.job_id)],
      ["status", statusBadge(job.status)],
      ...(job.stuck ? [["stuck", el("span", { id: "job-stuck" }, "running, but nothing moved for longer than this API's stuck_after_seconds")]] : []),
      ...(job.reason ? [["why", el("span", { id: "job-reason" }, job.reason)]] : []),
      ["on chain", statusBadge(job.chain_status)],
      ["manifest hash", hash(job.manifest_hash)],
      ["creator", hash(job.creator)],
      ["parties", el("span", {}, ...(job.parties || []).map((p) => el("div", {}, hash(p))))],
      ["created on chain in", hash(job.created_tx_hash)],
      ["created", when(job.created_at)],
      ["updated", when(job.updated_at)],
    ];
    $("job-meta").replaceChildren(...rows.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
  }

  async function loadSteps() {
    const jobId = state.job;
    if (!jobId) return;
    const generation = ++state.generation;
    clearError();
    const query = new URLSearchParams({ limit: String(STEPS_PAGE) });
    const cursor = state.stepCursors[state.stepsPage];
    if (cursor) query.set("cursor", cursor);
    try {
      const page = await api("GET", "/v1/jobs/" + encodeURIComponent(jobId) + "/steps?" + query.toString());
      if (generation !== state.generation) return;
      renderSteps(jobId, page);
    } catch (err) {
      if (generation !== state.generation) return;
      showError(err, "listing the steps");
    }
  }

  function renderSteps(jobId, page) {
    const items = Array.isArray(page.items) ? page.items : [];
    const rows = [];
    for (const item of items) {
      const verdictCell = el("td", { colspan: 7, class: "verdict-cell" });
      const verdictRow = el("tr", { class: "verdict-row", "data-verdict-for": item.seq, hidden: true }, verdictCell);
      const verifiable = VERIFIABLE.has(item.chain_status);
      const button = el(
        "button",
        {
          type: "button",
          class: "verify",
          "aria-label": "Verify step " + item.seq,
          disabled: !verifiable,
          title: verifiable ? "fetch the receipt and check it against the chain" : "not anchored yet: nothing to verify",
        },
        "Verify",
      );
      button.addEventListener("click", () => verifyStep(jobId, item.seq, button, verdictRow, verdictCell));
      const load = el(
        "button",
        {
          type: "button",
          class: "load-receipt secondary",
          "aria-label": "Load the receipt of step " + item.seq + " for verification in my browser",
          disabled: !verifiable,
          title: "fetch the receipt from this API into \u201cVerify in my browser\u201d below",
        },
        "Load",
      );
      load.addEventListener("click", () => loadReceipt(jobId, item.seq, load));
      rows.push(
        el(
          "tr",
          { class: "step-row", "data-seq": item.seq, "data-chain-status": item.chain_status },
          el("td", {}, String(item.seq)),
          el("td", {}, item.algorithm),
          el("td", { class: "chain-status" }, statusBadge(item.chain_status), item.failure_reason ? el("div", { class: "failure-reason" }, item.failure_reason) : null),
          el("td", { class: "batch" }, hash(item.batch_id)),
          el("td", { class: "tx-hash" }, hash(item.tx_hash)),
          el("td", { class: "block" }, item.block_number === null || item.block_number === undefined ? "\u2013" : String(item.block_number)),
          el("td", { class: "actions" }, button, " ", load),
        ),
        verdictRow,
      );
    }
    $("steps-body").replaceChildren(...rows);
    $("steps-empty").hidden = items.length > 0;
    if (page.next_cursor) state.stepCursors[state.stepsPage + 1] = page.next_cursor;
    $("steps-prev").disabled = state.stepsPage === 0;
    $("steps-next").disabled = !page.next_cursor;
    $("steps-range").textContent = items.length ? `steps ${items[0].seq}\u2013${items[items.length - 1].seq}` : "";
  }

  async function verifyStep(jobId, seq, button, verdictRow, verdictCell) {
    button.disabled = true;
    button.textContent = "Verifying\u2026";
    verdictRow.hidden = false;
    verdictCell.replaceChildren(el("p", { class: "muted" }, "fetching the receipt and checking it on chain\u2026"));
    try {
      const receipt = await api("GET", `/v1/jobs/${encodeURIComponent(jobId)}/steps/${Number(seq)}/receipt`);
      const verdict = await api("POST", "/v1/verify", receipt);
      verdictCell.replaceChildren(renderVerdict(verdict));
    } catch (err) {
      verdictCell.replaceChildren(el("div", { class: "error", role: "alert" }, ...errorNodes(err, "verifying step " + seq).filter(Boolean)));
    } finally {
      button.disabled = false;
      button.textContent = "Verify";
    }
  }

  function checkList(checks) {
    return el(
      "ul",
      { class: "checks" },
      ...checks.map((check) =>
        el(
          "li",
          { class: "check check-" + String(check.status).replace(/[^a-z]/g, ""), "data-check": check.name, "data-status": check.status },
          el("span", { class: "check-status" }, check.status),
          " ",
          el("span", { class: "check-name" }, check.name),
          el("span", { class: "check-detail" }, check.detail),
        ),
      ),
    );
  }

  function renderVerdict(verdict) {
    const ok = verdict.ok === true;
    const checks = Array.isArray(verdict.checks) ? verdict.checks : [];
    const failed = checks.filter((c) => c.status === "failed").map((c) => c.name);
    return el(
      "div",
      { class: "verdict " + (ok ? "verdict-valid" : "verdict-invalid"), "data-verdict": ok ? "valid" : "invalid" },
      el("strong", { class: "verdict-title" }, ok ? "valid" : "invalid"),
      failed.length ? el("span", { class: "verdict-failed" }, " \u2013 failed: " + failed.join(", ")) : null,
      el("p", { class: "verdict-summary" }, verdict.summary),
      verdict.pinned
        ? el(
            "p",
            { class: "verdict-pinned muted" },
            `verified against ${verdict.pinned.source}: ledger ${verdict.pinned.ledger} (code hash ${verdict.pinned.ledger_code_hash}) on chain ${verdict.pinned.chain_id}`,
          )
        : null,
      ...(Array.isArray(verdict.warnings) ? verdict.warnings : []).map((warning) =>
        el("p", { class: "verdict-warning" }, "warning: " + warning),
      ),
      checkList(checks),
    );
  }

  // -- verification in the browser (verify.js), against the node the auditor chose ----------------------

  function chosenNode() {
    const node = new URLSearchParams(location.search).get("node");
    return node && /^https?:\/\//i.test(node) ? node : null;
  }

  function showNode() {
    const node = chosenNode();
    const status = $("bv-node-status");
    if (node) {
      $("bv-node").value = node;
      status.className = "bv-node-chosen";
      status.replaceChildren(
        "Verifying against ",
        el("code", { id: "bv-node-current" }, node),
        ", the node you chose: this page may call it and this API, nothing else.",
      );
    } else {
      status.className = "muted";
      status.textContent = "No node chosen yet: this page may call nothing but this API.";
    }
    $("bv-run").disabled = !node;
  }

  function useNode(event) {
    event.preventDefault();
    const url = $("bv-node").value.trim();
    let parsed = null;
    try {
      parsed = new URL(url);
    } catch (_) {
      parsed = null;
    }
    if (!parsed || (parsed.protocol !== "http:" && parsed.protocol !== "https:") || parsed.username || parsed.password) {
      showBrowserError("the node", "give the node's http or https URL, without a user name or password, e.g. http://127.0.0.1:8545");
      return;
    }
    saveBrowserFields();
    location.assign(location.pathname + "?" + new URLSearchParams({ node: url }).toString() + location.hash);
  }

  function saveBrowserFields() {
    for (const id of BV_FIELDS) sessionStorage.setItem(BV_STORE + id, $(id).value);
  }

  function restoreBrowserFields() {
    for (const id of BV_FIELDS) {
      const value = sessionStorage.getItem(BV_STORE + id);
      if (value !== null) $(id).value = value;
    }
  }

  function readFileInto(input, target) {
    const file = input.files && input.files[0];
    if (!file) return;
    file.text().then((text) => {
      $(target).value = text;
      saveBrowserFields();
    });
  }

  function showBrowserError(what, message) {
    $("bv-verdict").replaceChildren(
      el("div", { class: "error", role: "alert", "data-error": what }, el("strong", { class: "error-title" }, what), el("p", { class: "error-message" }, message)),
    );
  }

  async function loadReceipt(jobId, seq, button) {
    button.disabled = true;
    clearError();
    try {
      const receipt = await api("GET", `/v1/jobs/${encodeURIComponent(jobId)}/steps/${Number(seq)}/receipt`);
      $("bv-receipt").value = JSON.stringify(receipt, null, 2);
      saveBrowserFields();
      $("bv-verdict").replaceChildren(el("p", { class: "muted", id: "bv-loaded" }, `receipt of step ${Number(seq)} loaded from this API: verify it below`));
      $("bv-section").scrollIntoView({ block: "start" });
    } catch (err) {
      showError(err, "loading the receipt of step " + seq);
    } finally {
      button.disabled = false;
    }
  }

  async function loadBundle() {
    const jobId = state.job;
    if (!jobId) return;
    const button = $("bundle-load");
    button.disabled = true;
    clearError();
    try {
      const bundle = await api("GET", `/v1/jobs/${encodeURIComponent(jobId)}/bundle`);
      $("bv-receipt").value = JSON.stringify(bundle, null, 1);
      saveBrowserFields();
      const count = Array.isArray(bundle.receipts) ? bundle.receipts.length : 0;
      $("bv-verdict").replaceChildren(el("p", { class: "muted", id: "bv-loaded" }, `audit bundle of the job loaded from this API (${count} receipts): verify it below`));
      $("bv-section").scrollIntoView({ block: "start" });
    } catch (err) {
      showError(err, "loading the audit bundle");
    } finally {
      button.disabled = false;
    }
  }

  function browserPin() {
    const deployment = $("bv-deployment").value.trim();
    if (deployment) return window.SecureflowVerify.pinFromDeployment(deployment, "the deployment JSON you gave");
    return window.SecureflowVerify.pinFromFields(
      {
        chainId: $("bv-chain-id").value.trim(),
        ledger: $("bv-ledger").value.trim(),
        codeHash: $("bv-code-hash").value.trim(),
        registry: $("bv-registry").value.trim(),
      },
      "the fields you gave",
    );
  }

  async function verifyInBrowser() {
    const node = chosenNode();
    if (!node) {
      showBrowserError("the node", "choose a node first (step 1)");
      return;
    }
    saveBrowserFields();
    let pin;
    try {
      pin = browserPin();
    } catch (err) {
      showBrowserError("the pinned deployment", err.message);
      return;
    }
    let receipt;
    try {
      receipt = JSON.parse($("bv-receipt").value);
    } catch (err) {
      showBrowserError("the receipt", "the receipt is not JSON (" + err.message + ")");
      return;
    }
    const min = Number($("bv-min-confirmations").value || "1");
    if (!Number.isInteger(min) || min < 0) {
      showBrowserError("the confirmations", "the number of confirmations required is a whole number, 0 or more");
      return;
    }
    const button = $("bv-run");
    button.disabled = true;
    button.textContent = "Verifying\u2026";
    $("bv-verdict").replaceChildren(el("p", { class: "muted" }, "checking the receipt against " + node + "\u2026"));
    try {
      if (receipt && typeof receipt === "object" && Array.isArray(receipt.receipts) && receipt.job) {
        const verdicts = await window.SecureflowVerify.verifyReceipts(receipt.receipts, node, pin, min);
        $("bv-verdict").replaceChildren(renderBundleVerdict(receipt, verdicts, node));
      } else {
        const verdict = await window.SecureflowVerify.verifyReceipt(receipt, node, pin, min);
        $("bv-verdict").replaceChildren(renderBrowserVerdict(verdict, node));
      }
    } catch (err) {
      showBrowserError("the node", err.message);
    } finally {
      button.disabled = false;
      button.textContent = "Verify in my browser";
    }
  }

  // an audit bundle: each receipt with the receipt checks (the bundle-level checks need secureflow verify)
  function renderBundleVerdict(bundle, verdicts, node) {
    const valid = verdicts.filter((v) => v.ok).length;
    const ok = verdicts.length > 0 && valid === verdicts.length;
    const jobId = bundle.job && typeof bundle.job.job_id === "string" ? bundle.job.job_id : "?";
    return el(
      "div",
      { class: "verdict " + (ok ? "verdict-valid" : "verdict-invalid"), "data-verdict": ok ? "valid" : "invalid", id: "bv-result" },
      el("strong", { class: "verdict-title" }, ok ? "receipts valid" : "invalid"),
      el("p", { class: "verdict-summary" }, `job ${jobId}: ${valid}/${verdicts.length} receipts valid`),
      el(
        "p",
        { class: "verdict-warning" },
        "only each receipt's checks ran here; the bundle's own checks (every record covered, seqs 0..n-1, the " +
          "manifest and parameter commitments, the job on chain, consents, its close and final record) need " +
          "secureflow verify BUNDLE.json --deployment FILE",
      ),
      el("p", { class: "verdict-pinned muted" }, `checked in this browser against the node you chose, ${node}; pinned: ${verdicts.length ? verdicts[0].pinned : ""}`),
      ...verdicts.map((verdict, i) => {
        const failed = verdict.checks.filter((c) => c.status === "failed").map((c) => c.name);
        return el(
          "details",
          { class: "bv-receipt", "data-seq": verdict.seq ?? "", "data-index": i, "data-verdict": verdict.ok ? "valid" : "invalid", open: !verdict.ok },
          el(
            "summary",
            {},
            `step ${verdict.seq ?? "?"}: `,
            el("span", { class: verdict.ok ? "bv-valid" : "verdict-failed" }, verdict.ok ? "valid" : "invalid \u2013 failed: " + failed.join(", ")),
          ),
          ...verdict.warnings.map((warning) => el("p", { class: "verdict-warning" }, "warning: " + warning)),
          checkList(verdict.checks),
        );
      }),
    );
  }

  function renderBrowserVerdict(verdict, node) {
    const failed = verdict.checks.filter((c) => c.status === "failed");
    const what = verdict.job_id !== null ? `job ${verdict.job_id} step ${verdict.seq}` : "receipt";
    const summary = verdict.ok
      ? `${what}: VALID (${verdict.checks.length} checks passed)`
      : `${what}: INVALID, ${failed[0].name} failed: ${failed[0].detail}`;
    return el(
      "div",
      { class: "verdict " + (verdict.ok ? "verdict-valid" : "verdict-invalid"), "data-verdict": verdict.ok ? "valid" : "invalid", id: "bv-result" },
      el("strong", { class: "verdict-title" }, verdict.ok ? "valid" : "invalid"),
      failed.length ? el("span", { class: "verdict-failed" }, " \u2013 failed: " + failed.map((c) => c.name).join(", ")) : null,
      el("p", { class: "verdict-summary" }, summary),
      el("p", { class: "verdict-pinned muted" }, `checked in this browser against the node you chose, ${node}; pinned: ${verdict.pinned}`),
      ...verdict.warnings.map((warning) => el("p", { class: "verdict-warning" }, "warning: " + warning)),
      checkList(verdict.checks),
    );
  }

  // -- wiring -------------------------------------------------------------------------------------------

  function init() {
    $("key-form").addEventListener("submit", useKey);
    $("key-forget").addEventListener("click", forgetKey);
    $("home").addEventListener("click", (event) => {
      event.preventDefault();
      if (location.hash) history.pushState(null, "", location.pathname + location.search);
      route();
    });
    $("status-filter").addEventListener("change", (event) => {
      state.jobsStatus = event.target.value;
      state.jobsOffset = 0;
      loadJobs();
    });
    $("jobs-refresh").addEventListener("click", loadJobs);
    $("jobs-newer").addEventListener("click", () => {
      state.jobsOffset = Math.max(0, state.jobsOffset - JOBS_PAGE);
      loadJobs();
    });
    $("jobs-older").addEventListener("click", () => {
      const next = Number($("jobs-older").dataset.next);
      if (Number.isInteger(next)) {
        state.jobsOffset = next;
        loadJobs();
      }
    });
    $("job-back").addEventListener("click", () => {
      history.pushState(null, "", location.pathname + location.search);
      route();
    });
    $("steps-refresh").addEventListener("click", loadSteps);
    $("steps-prev").addEventListener("click", () => {
      state.stepsPage = Math.max(0, state.stepsPage - 1);
      loadSteps();
    });
    $("steps-next").addEventListener("click", () => {
      if (state.stepCursors[state.stepsPage + 1]) {
        state.stepsPage += 1;
        loadSteps();
      }
    });
    restoreBrowserFields();
    showNode();
    $("bv-node-form").addEventListener("submit", useNode);
    $("bv-run").addEventListener("click", verifyInBrowser);
    $("bundle-load").addEventListener("click", loadBundle);
    $("bv-deployment-file").addEventListener("change", (event) => readFileInto(event.target, "bv-deployment"));
    $("bv-receipt-file").addEventListener("change", (event) => readFileInto(event.target, "bv-receipt"));
    for (const id of BV_FIELDS) $(id).addEventListener("change", saveBrowserFields);
    window.addEventListener("hashchange", route); // links, back and forward: every page has its own hash
    $("key-forget").hidden = !sessionStorage.getItem(KEY_STORE);
    if (sessionStorage.getItem(KEY_STORE)) start();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
