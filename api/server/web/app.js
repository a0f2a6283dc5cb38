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

  const state = { jobsOffset: 0, jobsStatus: "", job: null, stepCursors: [null], stepsPage: 0, generation: 0, side: 0 };
  const SVG_NS = "http://www.w3.org/2000/svg";

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

  // An SVG element (charts are drawn here, no library): attributes set one by one, strings become text nodes.
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      node.setAttribute(name, String(value));
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

  // Amounts in wei exceed a double's 2^53: an integer the parser would round is kept as its exact digits
  // (the source text of the number, where the browser offers it).
  function exactIntegers(_key, value, context) {
    if (typeof value === "number" && Number.isInteger(value) && !Number.isSafeInteger(value) && context && typeof context.source === "string" && /^-?[0-9]+$/.test(context.source)) {
      return context.source;
    }
    return value;
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
      data = text ? JSON.parse(text, exactIntegers) : null;
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
    state.side++;
    $("console-nav").hidden = true;
    $("overview-section").hidden = true;
    $("jobs-section").hidden = true;
    $("job-section").hidden = true;
    $("search-form").hidden = true;
    for (const id of ["search-section", "models-section", "settlement-section"]) $(id).hidden = true;
    for (const id of ["search-body", "models-body", "st-meta", "st-weights-chart", "st-record", "st-approvals-body", "st-balances-body", "st-history-body"]) $(id).replaceChildren();
    for (const id of ["ov-jobs", "ov-backlog", "ov-chain", "ov-anchored-chart", "ov-latency-chart", "ov-activity-body", "ov-attention-body", "ov-accounts-body"]) $(id).replaceChildren();
    clearTimeline();
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

  const SECTIONS = ["overview-section", "jobs-section", "job-section", "search-section", "models-section", "settlement-section"];
  const NAV = ["nav-overview", "nav-jobs", "nav-models", "nav-search"];

  function route() {
    if (!sessionStorage.getItem(KEY_STORE)) return;
    $("console-nav").hidden = false;
    $("search-form").hidden = false;
    const hash = location.hash;
    const job = /^#job\/(0x[0-9a-fA-F]{64})$/.exec(hash);
    const settlement = /^#settlement\/(0x[0-9a-fA-F]{64})$/.exec(hash);
    const models = /^#models(?:\/(0x[0-9a-fA-F]{64}))?$/.exec(hash);
    for (const id of NAV) $(id).removeAttribute("aria-current");
    for (const id of SECTIONS) $(id).hidden = true;
    if (job) {
      showJob(job[1].toLowerCase());
    } else if (settlement) {
      state.job = null;
      showSettlement(settlement[1].toLowerCase());
    } else if (models) {
      state.job = null;
      $("nav-models").setAttribute("aria-current", "page");
      showModels(models[1] ? models[1].toLowerCase() : null);
    } else if (hash === "#search" || hash.startsWith("#search?")) {
      state.job = null;
      $("nav-search").setAttribute("aria-current", "page");
      showSearch(new URLSearchParams(hash.slice("#search".length + 1)));
    } else if (hash === "#jobs") {
      $("nav-jobs").setAttribute("aria-current", "page");
      showJobs();
    } else {
      // the landing page: the consortium overview, the jobs below it
      $("nav-overview").setAttribute("aria-current", "page");
      $("overview-section").hidden = false;
      loadOverview();
      showJobs();
    }
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
    // a refreshed list keeps the keyboard's place: the job link that had the focus has it again
    const active = document.activeElement;
    const focusedRow = active && active.classList && active.classList.contains("job-link") ? active.closest("#jobs-body tr[data-job-id]") : null;
    const focusedJob = focusedRow ? focusedRow.dataset.jobId : null;
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
    if (focusedJob) {
      const again = [...$("jobs-body").querySelectorAll("tr[data-job-id] a.job-link")].find((a) => a.closest("tr").dataset.jobId === focusedJob);
      if (again) again.focus();
    }
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
    clearTimeline();
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
    loadTimeline(jobId);
    loadSteps();
  }

  function renderJob(job) {
    $("job-settlement-link").setAttribute("href", "#settlement/" + job.job_id);
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

  // -- the consortium overview (the landing page) ------------------------------------------------------

  function seconds(value) {
    if (value === null || value === undefined) return "\u2013";
    const n = Number(value);
    if (n < 120) return n.toFixed(n < 10 ? 2 : 1) + " s";
    if (n < 7200) return (n / 60).toFixed(1) + " min";
    return (n / 3600).toFixed(1) + " h";
  }

  function hhmm(ms) {
    return new Date(ms).toISOString().slice(11, 16);
  }

  function definitions(target, rows) {
    target.replaceChildren(
      ...rows.flatMap(([term, value, key]) => [el("dt", {}, term), el("dd", key ? { "data-key": key } : {}, value)]),
    );
  }

  async function loadOverview() {
    const side = ++state.side;
    $("ov-scope").textContent = "loading the overview\u2026";
    try {
      const overview = await api("GET", "/v1/overview?hours=" + encodeURIComponent($("ov-hours").value));
      if (side !== state.side) return;
      renderOverview(overview);
    } catch (err) {
      if (side !== state.side) return;
      $("ov-scope").textContent = "";
      showError(err, "loading the overview");
    }
  }

  function renderOverview(ov) {
    const overview = $("overview-section");
    overview.dataset.generatedAt = ov.generated_at;
    $("ov-scope").textContent =
      (ov.scope === "all" ? "Every job of the consortium" : "Only the jobs you are party to") +
      `, as of ${when(ov.generated_at)}; activity since ${when(ov.window_start)}.`;
    const byStatus = ov.jobs_by_status || {};
    definitions($("ov-jobs"), [
      ...Object.keys(byStatus).map((status) => [status, el("span", { class: "count", "data-status": status }, String(byStatus[status]))]),
      ["total", el("strong", { id: "ov-jobs-total" }, String(ov.jobs_total))],
    ]);
    const backlog = ov.backlog || {};
    definitions($("ov-backlog"), [
      ["pending", el("span", { id: "ov-pending" }, String(backlog.pending))],
      ["submitted", el("span", { id: "ov-submitted" }, String(backlog.submitted))],
      ["failed (never anchored)", el("span", { id: "ov-failed-records" }, String(backlog.failed))],
      [
        "oldest pending",
        backlog.oldest_pending_at
          ? el("span", { id: "ov-oldest", title: when(backlog.oldest_pending_at) }, seconds(backlog.oldest_pending_age_seconds) + " ago")
          : el("span", { id: "ov-oldest", class: "muted" }, "none"),
      ],
    ]);
    const block = ov.last_block;
    definitions($("ov-chain"), [
      ["last block seen", block ? el("strong", { id: "ov-last-block" }, String(block.number)) : el("span", { id: "ov-last-block", class: "muted" }, "none yet")],
      ["its hash", block ? hash(block.hash) : "\u2013"],
      ["indexed at", block ? when(block.seen_at) : "\u2013"],
    ]);
    const start = Date.parse(ov.window_start);
    const end = Date.parse(ov.window_end);
    const buckets = Array.isArray(ov.activity) ? ov.activity : [];
    $("ov-anchored-chart").replaceChildren(
      chart({
        id: "ov-anchored-svg",
        W: roomFor($("ov-anchored-chart"), 720),
        label: "ov-anchored-caption",
        buckets,
        start,
        end,
        series: [{ key: "anchored", cls: "pt", line: true, text: (b) => `${b.anchored} step${b.anchored === 1 ? "" : "s"} anchored` }],
        unit: "",
        integer: true,
      }),
    );
    $("ov-latency-chart").replaceChildren(
      chart({
        id: "ov-latency-svg",
        W: roomFor($("ov-latency-chart"), 720),
        label: "ov-latency-caption",
        buckets,
        start,
        end,
        series: [
          { key: "latency_avg_seconds", cls: "pt", line: true, text: (b) => `mean latency ${seconds(b.latency_avg_seconds)}` },
          { key: "latency_max_seconds", cls: "pt-max", line: false, text: (b) => `max latency ${seconds(b.latency_max_seconds)}` },
        ],
        unit: " s",
        integer: false,
      }),
    );
    $("ov-activity-body").replaceChildren(
      ...buckets.map((b) =>
        el(
          "tr",
          { "data-start": b.start },
          el("th", { scope: "row" }, when(b.start).slice(0, 16)),
          el("td", {}, String(b.anchored)),
          el("td", {}, String(b.latency_avg_seconds)),
          el("td", {}, String(b.latency_max_seconds)),
        ),
      ),
    );
    const attention = Array.isArray(ov.attention) ? ov.attention : [];
    $("ov-attention-body").replaceChildren(
      ...attention.map((job) =>
        el(
          "tr",
          { "data-job-id": job.job_id },
          el("td", {}, jobLink(job.job_id)),
          el("td", {}, statusBadge(job.status), job.stuck ? el("span", { class: "status status-stuck" }, "stuck") : null),
          el(
            "td",
            {},
            job.reason ? el("div", { class: "attention-reason" }, job.reason) : job.stuck ? el("div", { class: "muted" }, "running, but nothing moved for a while") : null,
            job.close_reason ? el("div", { class: "failure-reason" }, "close: " + job.close_reason) : null,
          ),
          el("td", {}, when(job.updated_at)),
        ),
      ),
    );
    $("ov-attention-empty").hidden = attention.length > 0;
    const accounts = Array.isArray(ov.accounts) ? ov.accounts : [];
    $("ov-accounts-error").hidden = !ov.accounts_error;
    $("ov-accounts-error").textContent = ov.accounts_error || "";
    $("ov-accounts-body").replaceChildren(
      ...accounts.map((account) =>
        el(
          "tr",
          { "data-address": account.address },
          el("td", {}, el("code", { class: "address" }, account.address)),
          el("td", {}, account.name || el("span", { class: "muted" }, "\u2013")),
          el("td", { class: "roles" }, (account.roles || []).join(", ") || "no role"),
          el("td", {}, account.suspended ? statusBadge("suspended") : "active"),
        ),
      ),
    );
    overview.dataset.loaded = "true";
  }

  function jobLink(jobId) {
    return JOB_ID.test(jobId) ? el("a", { href: "#job/" + jobId, title: jobId, class: "job-link" }, short(jobId)) : short(jobId);
  }

  function niceMax(value, integer) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) {
      const candidate = step * power;
      if (candidate >= value && (!integer || Number.isInteger(candidate))) return candidate;
    }
    return Math.ceil(value);
  }

  // A time chart as inline SVG: one point per bucket the API gave (x: its start, y: its value).
  // The drawing's width in its own units: the room it gets on the page (so its text stays legible at 360 px).
  function roomFor(container, widest) {
    return Math.round(Math.max(300, Math.min(widest, container.clientWidth || widest)));
  }

  function chart({ id, label, buckets, start, end, series, unit, integer, W }) {
    const H = 200;
    const left = 48;
    const right = 12;
    const top = 12;
    const bottom = 28;
    const span = Math.max(1, end - start);
    const values = buckets.flatMap((b) => series.map((s) => Number(b[s.key]) || 0));
    const max = niceMax(Math.max(0, ...values), integer);
    const x = (ms) => left + ((ms - start) / span) * (W - left - right);
    const y = (v) => H - bottom - (v / max) * (H - top - bottom);
    const root = svg("svg", { id, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": label, class: "chart-svg", "data-points": buckets.length });
    const axis = svg("g", { class: "axis" });
    axis.append(svg("line", { x1: left, y1: H - bottom, x2: W - right, y2: H - bottom }));
    axis.append(svg("line", { x1: left, y1: top, x2: left, y2: H - bottom }));
    for (const v of [0, max / 2, max]) {
      axis.append(svg("line", { class: "grid", x1: left, y1: y(v), x2: W - right, y2: y(v) }));
      axis.append(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, (integer ? String(Math.round(v)) : String(+v.toFixed(2))) + unit));
    }
    for (const t of [start, start + span / 2, end]) {
      axis.append(svg("text", { x: x(t), y: H - 8, "text-anchor": t === start ? "start" : t === end ? "end" : "middle" }, hhmm(t)));
    }
    root.append(axis);
    if (!buckets.length) {
      root.append(svg("text", { x: (left + W - right) / 2, y: (top + H - bottom) / 2, "text-anchor": "middle", class: "chart-empty" }, "no step confirmed in this window"));
      return root;
    }
    const when_ = (b) => Date.parse(b.start);
    for (const s of series) {
      const group = svg("g", { class: "series series-" + s.cls, "data-series": s.key });
      if (s.line && buckets.length > 1) {
        group.append(svg("polyline", { points: buckets.map((b) => `${x(when_(b)).toFixed(1)},${y(Number(b[s.key]) || 0).toFixed(1)}`).join(" ") }));
      }
      for (const b of buckets) {
        const cx = x(when_(b));
        const cy = y(Number(b[s.key]) || 0);
        const title = svg("title", {}, `${when(b.start).slice(0, 16)} UTC: ${s.text(b)}`);
        const mark = s.cls === "pt-max"
          ? svg("line", { class: s.cls, x1: cx - 5, y1: cy, x2: cx + 5, y2: cy, "data-start": b.start, "data-value": b[s.key] }, title)
          : svg("circle", { class: s.cls, cx: cx.toFixed(1), cy: cy.toFixed(1), r: 4, "data-start": b.start, "data-value": b[s.key] }, title);
        group.append(mark);
      }
      root.append(group);
    }
    return root;
  }

  // -- one job as a timeline ----------------------------------------------------------------------------

  function clearTimeline() {
    for (const id of ["tl-manifest", "tl-consents-body", "tl-gantt", "tl-records", "tl-models-body", "tl-close"]) $(id).replaceChildren();
    $("tl-status").textContent = "";
    $("tl-models-empty").hidden = true;
    delete $("timeline").dataset.loaded;
  }

  async function loadTimeline(jobId) {
    const side = ++state.side;
    $("tl-status").textContent = "loading the timeline\u2026";
    try {
      const timeline = await api("GET", "/v1/jobs/" + encodeURIComponent(jobId) + "/timeline");
      if (side !== state.side || state.job !== jobId) return;
      renderTimeline(timeline);
    } catch (err) {
      if (side !== state.side) return;
      $("tl-status").textContent = "";
      showError(err, "loading the job's timeline");
    }
  }

  function text(value) {
    if (value === null || value === undefined) return "";
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  function renderManifest(manifest) {
    if (!manifest || typeof manifest !== "object") {
      definitions($("tl-manifest"), [["manifest", el("span", { class: "muted" }, "not submitted through this API: no manifest stored")]]);
      return;
    }
    const parties = Array.isArray(manifest.parties) ? manifest.parties : [];
    const datasets = manifest.datasets && typeof manifest.datasets === "object" ? manifest.datasets : {};
    const steps = Array.isArray(manifest.steps) ? manifest.steps : [];
    const known = new Set(["name", "parties", "datasets", "steps"]);
    definitions($("tl-manifest"), [
      ["name", el("span", { id: "tl-manifest-name" }, text(manifest.name))],
      ["parties", el("ul", { class: "plain" }, ...parties.map((p) => el("li", {}, text(p && p.name), " ", hash(p && p.address))))],
      [
        "datasets (by reference)",
        el(
          "ul",
          { class: "plain" },
          ...Object.entries(datasets).map(([name, perParty]) =>
            el(
              "li",
              {},
              el("strong", {}, name),
              ": ",
              ...Object.entries(perParty && typeof perParty === "object" ? perParty : {}).flatMap(([party, ref], i) => [i ? ", " : "", party + " \u2192 ", el("code", {}, text(ref))]),
            ),
          ),
        ),
      ],
      [
        "steps and parameters",
        el(
          "ol",
          { start: 0, class: "manifest-steps" },
          ...steps.map((step, seq) =>
            el(
              "li",
              { "data-seq": seq },
              el("strong", {}, text(step && step.algorithm)),
              " ",
              el("code", { class: "params" }, JSON.stringify((step && step.params) || {})),
              step && step.inputs ? el("div", { class: "muted" }, "inputs " + JSON.stringify(step.inputs)) : null,
            ),
          ),
        ),
      ],
      ...Object.keys(manifest)
        .filter((key) => !known.has(key))
        .map((key) => [key, el("code", {}, text(manifest[key]))]),
    ]);
  }

  // A transaction hash links to the search page, which names the job and the event it carried (this
  // console has no block explorer: it never links to another origin).
  function txCell(tx) {
    if (!tx) return el("span", { class: "muted" }, "\u2013");
    return el(
      "a",
      { href: "#search?q=" + encodeURIComponent(tx), class: "tx-link", title: "what transaction " + tx + " did" },
      el("code", { class: "tx", "data-tx": tx }, tx),
    );
  }

  function duration(ms) {
    const n = Number(ms) || 0;
    if (n < 1000) return n + " ms";
    if (n < 120000) return (n / 1000).toFixed(n < 10000 ? 2 : 1) + " s";
    return (n / 60000).toFixed(1) + " min";
  }

  function fit(label, chars) {
    return label.length <= chars ? label : label.slice(0, Math.max(1, chars - 1)) + "\u2026";
  }

  function gantt(steps, W) {
    const left = W < 500 ? 110 : 150;
    const right = 70;
    const row = 24;
    const top = 8;
    const H = top + steps.length * row + 26;
    const first = Math.min(...steps.map((s) => s.started_at_ms));
    const last = Math.max(...steps.map((s) => s.finished_at_ms));
    const span = Math.max(1, last - first);
    const x = (ms) => left + ((ms - first) / span) * (W - left - right);
    const root = svg("svg", { id: "tl-gantt-svg", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "tl-gantt-title", class: "chart-svg gantt", "data-bars": steps.length });
    const axis = svg("g", { class: "axis" });
    axis.append(svg("line", { x1: left, y1: H - 22, x2: W - right, y2: H - 22 }));
    axis.append(svg("text", { x: left, y: H - 6, "text-anchor": "start" }, "0"));
    axis.append(svg("text", { x: W - right, y: H - 6, "text-anchor": "end" }, "+" + duration(span)));
    root.append(axis);
    steps.forEach((step, i) => {
      const y0 = top + i * row;
      const x0 = x(step.started_at_ms);
      const width = Math.max(3, x(step.finished_at_ms) - x0);
      const cls = "gantt-bar bar-" + String(step.chain_status).replace(/[^a-z]/g, "") + (String(step.status).startsWith("succeeded") ? "" : " bar-failed");
      root.append(
        svg(
          "g",
          { class: "gantt-row", "data-seq": step.seq },
          svg("text", { x: 4, y: y0 + 16, class: "gantt-label" }, fit(`${step.seq} ${step.algorithm}`, Math.floor((left - 8) / 7.5))),
          svg(
            "rect",
            { class: cls, x: x0.toFixed(1), y: y0 + 4, width: width.toFixed(1), height: row - 8, rx: 2, "data-seq": step.seq, "data-duration-ms": step.duration_ms },
            svg("title", {}, `step ${step.seq} ${step.algorithm}: ${duration(step.duration_ms)}, ${step.status}, ${step.chain_status} on chain`),
          ),
          svg("text", { x: Math.min(W - 4, x0 + width + 4), y: y0 + 16, class: "gantt-duration" }, duration(step.duration_ms)),
        ),
      );
    });
    return root;
  }

  function digestList(digests) {
    const entries = Object.entries(digests && typeof digests === "object" ? digests : {});
    if (!entries.length) return el("span", { class: "muted" }, "\u2013");
    return el("ul", { class: "plain" }, ...entries.map(([name, digest]) => el("li", {}, name + " ", hash(digest))));
  }

  function renderRecord(step) {
    const verdict = step.signatures_valid ? "every party's signature verifies" : "a signature does not verify";
    return el(
      "li",
      { class: "record", "data-seq": step.seq, "data-signatures": step.signatures_valid ? "valid" : "invalid" },
      el(
        "details",
        {},
        el(
          "summary",
          {},
          el("strong", {}, `step ${step.seq}`),
          ` ${step.algorithm} \u00b7 ${duration(step.duration_ms)} \u00b7 `,
          statusBadge(step.status),
          " ",
          statusBadge(step.chain_status),
          " ",
          el("span", { class: step.signatures_valid ? "sig-ok" : "sig-bad" }, verdict),
        ),
        el(
          "dl",
          { class: "meta" },
          ...[
            ["algorithm", step.algorithm],
            ["parameter hash", el("code", { class: "params-hash" }, step.params_hash)],
            ["code version", step.code_version],
            ["record hash", el("code", {}, step.record_hash)],
            ["started", when(step.started_at_ms)],
            ["duration", duration(step.duration_ms)],
            ["anchoring transaction", txCell(step.tx_hash)],
            ["block", step.block_number === null || step.block_number === undefined ? "\u2013" : String(step.block_number)],
            ...(step.failure_reason ? [["not anchored because", el("span", { class: "failure-reason" }, step.failure_reason)]] : []),
          ].flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]),
        ),
        el(
          "div",
          { class: "scroll", tabindex: 0, "aria-label": `parties of step ${step.seq}` },
          el(
            "table",
            { class: "parts" },
            el("caption", { class: "muted" }, `each party's part of step ${step.seq} (salted digests)`),
            el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "party"), el("th", { scope: "col" }, "inputs"), el("th", { scope: "col" }, "outputs"), el("th", { scope: "col" }, "signature"))),
            el(
              "tbody",
              {},
              ...(step.parties || []).map((part) =>
                el(
                  "tr",
                  { "data-party": part.party, "data-signature": part.signature_valid ? "valid" : "invalid" },
                  el("td", {}, hash(part.party)),
                  el("td", {}, digestList(part.inputs)),
                  el("td", {}, digestList(part.outputs)),
                  el("td", { class: part.signature_valid ? "sig-ok" : "sig-bad" }, part.signature_valid ? "verifies (its own key)" : "does not verify: " + (part.problem || "?")),
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }

  function renderTimeline(tl) {
    renderManifest(tl.manifest);
    const consents = Array.isArray(tl.consents) ? tl.consents : [];
    $("tl-consents-body").replaceChildren(
      ...consents.map((c) =>
        el(
          "tr",
          { "data-party": c.party, "data-consented": c.consented ? "yes" : "no" },
          el("td", {}, el("code", {}, c.party)),
          el("td", {}, c.consented ? statusBadge("confirmed") : el("span", { class: "status status-pending" }, "no consent seen")),
          el("td", {}, txCell(c.tx_hash)),
          el("td", {}, c.block_number === null || c.block_number === undefined ? "\u2013" : String(c.block_number)),
        ),
      ),
    );
    const steps = Array.isArray(tl.steps) ? tl.steps : [];
    $("tl-gantt").replaceChildren(steps.length ? gantt(steps, roomFor($("tl-gantt"), 900)) : el("p", { class: "muted" }, "No step recorded yet."));
    $("tl-records").replaceChildren(...steps.map(renderRecord));
    const models = Array.isArray(tl.models) ? tl.models : [];
    $("tl-models-body").replaceChildren(
      ...models.map((m) =>
        el(
          "tr",
          { "data-model": m.model_id, "data-version": m.version },
          el("td", {}, m.model_id),
          el("td", {}, String(m.version)),
          el("td", {}, el("code", { class: "model-hash" }, m.model_hash)),
          el(
            "td",
            {},
            m.on_chain_hash
              ? el("span", { class: m.on_chain_hash.toLowerCase() === String(m.model_hash).toLowerCase() ? "sig-ok" : "sig-bad" }, m.on_chain_hash.toLowerCase() === String(m.model_hash).toLowerCase() ? "recorded, same hash" : "recorded with another hash: " + m.on_chain_hash)
              : statusBadge(m.status),
          ),
          el("td", {}, txCell(m.tx_hash)),
        ),
      ),
    );
    $("tl-models-empty").hidden = models.length > 0;
    const close = tl.close || {};
    const rows = [
      ["close", close.close_status ? statusBadge(close.close_status) : el("span", { class: "muted" }, "not closed")],
      ...(close.close_reason ? [["close reason", el("span", { class: "failure-reason" }, close.close_reason)]] : []),
      ["steps: on chain / here", el("span", { id: "tl-close-steps" }, `${close.step_count ?? "\u2013"} / ${close.api_step_count}`)],
      ["final root on chain", close.final_root ? el("code", { id: "tl-close-root" }, close.final_root) : "\u2013"],
      ["final root here", close.api_final_root ? el("code", { id: "tl-close-api-root" }, close.api_final_root) : "\u2013"],
      ["final record hash", close.final_record_hash ? el("code", {}, close.final_record_hash) : "\u2013"],
      ["closed in", txCell(close.tx_hash)],
      [
        "verdict",
        el(
          "strong",
          { id: "tl-close-verdict", class: close.matches === true ? "sig-ok" : close.matches === false ? "sig-bad" : "muted", "data-matches": String(close.matches) },
          close.matches === true ? "the chain's close matches this API's records" : close.matches === false ? "the chain's close DIFFERS from this API's records" : "not closed on chain yet",
        ),
      ],
    ];
    definitions($("tl-close"), rows);
    $("tl-status").textContent = tl.steps_truncated ? "Only the first steps are drawn; the table below lists every step." : "";
    $("timeline").dataset.loaded = "true";
  }

  async function downloadBundle() {
    const jobId = state.job;
    if (!jobId) return;
    const button = $("bundle-download");
    button.disabled = true;
    clearError();
    try {
      const bundle = await api("GET", `/v1/jobs/${encodeURIComponent(jobId)}/bundle`);
      const url = URL.createObjectURL(new Blob([JSON.stringify(bundle, null, 1)], { type: "application/json" }));
      const link = el("a", { href: url, download: `audit-bundle-${jobId}.json`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (err) {
      showError(err, "downloading the audit bundle");
    } finally {
      button.disabled = false;
    }
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
      if (receipt && typeof receipt === "object" && !Array.isArray(receipt) && "receipts" in receipt) {
        const verdict = await window.SecureflowVerify.verifyBundle(receipt, node, pin, min);
        $("bv-verdict").replaceChildren(renderBundleVerdict(verdict, node));
      } else {
        const verdict = await window.SecureflowVerify.verifyReceipt(receipt, node, pin, min);
        $("bv-verdict").replaceChildren(renderBrowserVerdict(verdict, node));
      }
    } catch (err) {
      const malformed = err instanceof window.SecureflowVerify.BundleFormatError;
      showBrowserError(malformed ? "the audit bundle" : "the node", err.message);
    } finally {
      button.disabled = false;
      button.textContent = "Verify in my browser";
    }
  }

  // an audit bundle: the bundle checks of secureflow verify, then each receipt with the receipt checks
  function renderBundleVerdict(verdict, node) {
    const failed = verdict.checks.filter((c) => c.status === "failed").map((c) => c.name);
    for (const receipt of verdict.invalid_receipts) {
      for (const check of receipt.checks) if (check.status === "failed" && !failed.includes(check.name)) failed.push(check.name);
    }
    return el(
      "div",
      { class: "verdict " + (verdict.ok ? "verdict-valid" : "verdict-invalid"), "data-verdict": verdict.ok ? "valid" : "invalid", id: "bv-result" },
      el("strong", { class: "verdict-title" }, verdict.ok ? "valid" : "invalid"),
      failed.length ? el("span", { class: "verdict-failed" }, " \u2013 failed: " + failed.sort().join(", ")) : null,
      el("p", { class: "verdict-summary" }, verdict.summary),
      el("p", { class: "verdict-pinned muted" }, `checked in this browser against the node you chose, ${node}; pinned: ${verdict.pinned}`),
      ...verdict.warnings.map((warning) => el("p", { class: "verdict-warning" }, "warning: " + warning)),
      el("div", { class: "bv-bundle", id: "bv-bundle-checks" }, el("h3", {}, "The bundle (the whole job)"), checkList(verdict.checks)),
      ...verdict.receipts.map((receipt, i) => {
        const failedHere = receipt.checks.filter((c) => c.status === "failed").map((c) => c.name);
        return el(
          "details",
          { class: "bv-receipt", "data-seq": receipt.seq ?? "", "data-index": i, "data-verdict": receipt.ok ? "valid" : "invalid", open: !receipt.ok },
          el(
            "summary",
            {},
            `step ${receipt.seq ?? "?"}: `,
            el("span", { class: receipt.ok ? "bv-valid" : "verdict-failed" }, receipt.ok ? "valid" : "invalid \u2013 failed: " + failedHere.join(", ")),
          ),
          ...receipt.warnings.map((warning) => el("p", { class: "verdict-warning" }, "warning: " + warning)),
          checkList(receipt.checks),
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

  // -- search: one box for ids, addresses and hashes, and a time range (GET /v1/search) -------------------

  const KIND_TEXT = {
    job: "the job id",
    member: "a party of the job",
    record: "a step record",
    model: "a model",
    transaction: "a transaction",
  };

  // a datetime-local value, read as UTC, as RFC 3339 with its zone (or null)
  function utcTime(value) {
    if (!value) return null;
    const date = new Date(value + (value.length === 16 ? ":00" : "") + "Z");
    return Number.isNaN(date.getTime()) ? null : date.toISOString();
  }

  function submitSearch(event) {
    event.preventDefault();
    const params = new URLSearchParams();
    const q = $("search-q").value.trim();
    if (q) params.set("q", q);
    const since = utcTime($("search-since").value);
    const until = utcTime($("search-until").value);
    if (since) params.set("since", since);
    if (until) params.set("until", until);
    const target = "#search?" + params.toString();
    if (location.hash === target) route();
    else location.hash = target;
  }

  function showSearch(params) {
    $("search-section").hidden = false;
    const q = params.get("q") || "";
    if ($("search-q").value.trim() !== q) $("search-q").value = q;
    for (const [name, input] of [["since", "search-since"], ["until", "search-until"]]) {
      const value = params.get(name);
      if (value && !Number.isNaN(Date.parse(value))) $(input).value = new Date(value).toISOString().slice(0, 19);
    }
    if (!q && !params.get("since") && !params.get("until")) {
      $("search-body").replaceChildren();
      delete $("search-section").dataset.loaded;
      $("search-status").textContent = "Type a job id, a member's address, a model, record or transaction hash, or choose a time range.";
      return;
    }
    loadSearch(params);
  }

  async function loadSearch(params) {
    const generation = ++state.generation;
    clearError();
    delete $("search-section").dataset.loaded;
    $("search-status").textContent = "searching\u2026";
    const query = new URLSearchParams();
    for (const name of ["q", "since", "until"]) if (params.get(name)) query.set(name, params.get(name));
    try {
      const found = await api("GET", "/v1/search?" + query.toString());
      if (generation !== state.generation) return;
      renderSearch(found);
    } catch (err) {
      if (generation !== state.generation) return;
      $("search-status").textContent = "";
      $("search-body").replaceChildren();
      showError(err, "searching");
    }
  }

  function describeHit(hit) {
    const parts = [el("strong", {}, KIND_TEXT[hit.kind] || hit.kind)];
    if (hit.kind === "record") parts.push(" \u00b7 step " + hit.seq + " ", hash(hit.record_hash));
    if (hit.kind === "model") parts.push(" \u00b7 " + hit.model_id + " v" + hit.version + " ", hash(hit.model_hash));
    if (hit.kind === "transaction") parts.push(" \u00b7 " + (hit.event || "") + (hit.seq !== null && hit.seq !== undefined ? " of step " + hit.seq : "") + " ", hash(hit.tx_hash));
    return parts;
  }

  function renderSearch(found) {
    const items = Array.isArray(found.items) ? found.items : [];
    const how = { hash: "as a job id, record, model and transaction hash", address: "as a member's address", time_range: "as the jobs created in the time range" }[found.classified_as] || "";
    $("search-status").textContent =
      (items.length ? `${items.length} found` : "Nothing found") +
      (found.query ? ` for ${found.query}, looked up ${how}` : ` ${how}`) +
      (found.truncated ? "; more matched: narrow the search or the time range." : ".");
    $("search-body").replaceChildren(
      ...items.map((hit, i) => {
        const links = [el("a", { href: "#job/" + hit.job_id, class: "hit-timeline" }, "timeline")];
        if (hit.kind === "model" && hit.model_hash) links.push(" \u00b7 ", el("a", { href: "#models/" + hit.model_hash, class: "hit-models" }, "models"));
        links.push(" \u00b7 ", el("a", { href: "#settlement/" + hit.job_id, class: "hit-settlement" }, "settlement"));
        return el(
          "tr",
          { class: "hit", "data-kind": hit.kind, "data-job-id": hit.job_id, "data-index": i },
          el("td", {}, ...describeHit(hit)),
          el("td", {}, jobLink(hit.job_id)),
          el("td", {}, statusBadge(hit.job_status)),
          el("td", {}, when(hit.created_at)),
          el("td", { class: "hit-links" }, ...links),
        );
      }),
    );
    $("search-section").dataset.loaded = "true";
  }

  // -- models: as the chain recorded them, beside this API's (GET /v1/models) -----------------------------

  function showModels(modelHash) {
    state.modelsHash = modelHash;
    state.modelsCursor = null;
    $("models-section").hidden = false;
    loadModels(false);
  }

  async function loadModels(more) {
    const generation = ++state.generation;
    clearError();
    if (!more) {
      state.modelsCursor = null;
      $("models-body").replaceChildren();
      delete $("models-section").dataset.loaded;
    }
    $("models-status").textContent = "loading the models\u2026";
    const query = new URLSearchParams({ limit: "100" });
    if (state.modelsHash) query.set("model_hash", state.modelsHash);
    if (more && state.modelsCursor) query.set("cursor", state.modelsCursor);
    try {
      const page = await api("GET", "/v1/models?" + query.toString());
      if (generation !== state.generation) return;
      renderModels(page, more);
    } catch (err) {
      if (generation !== state.generation) return;
      $("models-status").textContent = "";
      showError(err, "listing the models");
    }
  }

  function renderModels(page, more) {
    const items = Array.isArray(page.items) ? page.items : [];
    const rows = items.map((m) => {
      const verdict =
        m.hash_matches === true
          ? el("span", { class: "sig-ok" }, "yes, the same hash")
          : m.hash_matches === false
            ? el("span", { class: "sig-bad" }, "NO: here " + m.api_model_hash)
            : el("span", { class: "muted" }, "not held by this API");
      return el(
        "tr",
        { class: "model-row", "data-model-hash": m.model_hash, "data-job-id": m.job_id || "", "data-matches": String(m.hash_matches) },
        el("td", {}, m.name ? el("strong", {}, m.name) : null, el("div", {}, hash(m.model_id))),
        el("td", {}, String(m.version)),
        el("td", {}, el("code", { class: "model-hash" }, m.model_hash)),
        el("td", { class: "model-verdict" }, verdict, m.api_status ? el("div", {}, statusBadge(m.api_status)) : null),
        el("td", {}, m.job_id ? jobLink(m.job_id) : el("span", { class: "muted" }, "\u2013"), m.job_id ? el("div", {}, el("a", { href: "#settlement/" + m.job_id, class: "model-settlement" }, "settlement")) : null),
        el("td", {}, txCell(m.tx_hash), el("div", { class: "muted" }, "block " + m.block_number)),
      );
    });
    if (more) $("models-body").append(...rows);
    else $("models-body").replaceChildren(...rows);
    state.modelsCursor = page.next_cursor || null;
    $("models-more").disabled = !state.modelsCursor;
    const shown = $("models-body").children.length;
    $("models-empty").hidden = shown > 0;
    $("models-status").textContent = state.modelsHash ? `Models with the hash ${state.modelsHash}: ${shown}.` : `${shown} model${shown === 1 ? "" : "s"} recorded on chain.`;
    $("models-section").dataset.loaded = "true";
  }

  // -- a job's settlement: weights (chart), the contribution record's proof, approvals, money -------------

  function showSettlement(jobId) {
    state.settlement = jobId;
    $("settlement-section").hidden = false;
    loadSettlement(jobId);
  }

  async function optional(path) {
    try {
      return await api("GET", path);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return null;
      throw err;
    }
  }

  async function loadSettlement(jobId) {
    const generation = ++state.generation;
    clearError();
    delete $("settlement-section").dataset.loaded;
    for (const id of ["st-meta", "st-weights-chart", "st-record", "st-approvals-body", "st-balances-body", "st-history-body"]) $(id).replaceChildren();
    $("settlement-title").textContent = "Settlement of job " + short(jobId);
    $("st-status").textContent = "reading the Settlement contract\u2026";
    const base = "/v1/settlements/" + encodeURIComponent(jobId);
    try {
      const [settlement, history] = await Promise.all([api("GET", base), api("GET", base + "/history")]);
      const proposal = await optional(base + "/proposal");
      const seq = proposal && proposal.weights ? proposal.weights.seq : proposal ? proposal.proposal.seq : null;
      const receipt = seq === null ? null : await optional(`/v1/jobs/${encodeURIComponent(jobId)}/steps/${Number(seq)}/receipt`);
      if (generation !== state.generation) return;
      renderSettlement(jobId, settlement, history, proposal, receipt);
    } catch (err) {
      if (generation !== state.generation) return;
      $("st-status").textContent = "";
      showError(err, "reading the job's settlement");
    }
  }

  function amount(value) {
    return el("span", { class: "amount", "data-amount": String(value) }, String(value) + " wei");
  }

  function weightsChart(rows, W) {
    const left = W < 500 ? 120 : 200;
    const right = 70;
    const row = 28;
    const H = 8 + rows.length * row + 24;
    const x = (bps) => left + (bps / 10000) * (W - left - right);
    const root = svg("svg", { id: "st-weights-svg", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "st-weights-caption", class: "chart-svg weights", "data-bars": rows.length });
    const axis = svg("g", { class: "axis" });
    axis.append(svg("line", { x1: left, y1: H - 20, x2: W - right, y2: H - 20 }));
    for (const bps of [0, 5000, 10000]) {
      axis.append(svg("line", { class: "grid", x1: x(bps), y1: 4, x2: x(bps), y2: H - 20 }));
      axis.append(svg("text", { x: x(bps), y: H - 6, "text-anchor": bps === 0 ? "start" : bps === 10000 ? "end" : "middle" }, bps / 100 + " %"));
    }
    root.append(axis);
    rows.forEach((r, i) => {
      const y0 = 8 + i * row;
      const width = Math.max(1, x(r.bps) - left);
      root.append(
        svg(
          "g",
          { class: "weight-row" },
          svg("text", { x: 4, y: y0 + 17, class: "gantt-label" }, short(r.member)),
          svg("rect", { class: "weight-bar", x: left, y: y0 + 4, width: width.toFixed(1), height: row - 10, rx: 2, "data-member": r.member, "data-bps": r.bps }, svg("title", {}, `${r.member}: ${r.bps} bps (${(r.bps / 100).toFixed(2)} %)`)),
          svg("text", { x: Math.min(W - 4, left + width + 4), y: y0 + 17, class: "weight-value" }, (r.bps / 100).toFixed(2) + " %"),
        ),
      );
    });
    return root;
  }

  function renderSettlement(jobId, st, history, proposal, receipt) {
    const onChain = st.weights_set && Array.isArray(st.balances) && st.balances.length > 0;
    const rows = onChain
      ? st.balances.map((b) => ({ member: b.member, bps: Number(b.bps) }))
      : proposal
        ? proposal.proposal.members.map((member, i) => ({ member, bps: Number(proposal.proposal.bps[i]) }))
        : [];
    definitions($("st-meta"), [
      ["job", el("span", {}, el("code", { id: "st-job-id" }, jobId), " ", el("a", { href: "#job/" + jobId }, "timeline"))],
      ["Settlement contract", el("code", {}, st.contract)],
      ["asset", el("span", {}, el("code", {}, st.asset), " (the zero address is ETH)")],
      ["weights", el("strong", { id: "st-weights-state", "data-set": String(st.weights_set) }, st.weights_set ? "set on chain" : proposal ? "proposed, not set on chain yet" : "not proposed")],
      ["weights hash", hash(st.weights_hash)],
      ["deposited in total", el("span", { id: "st-deposited" }, amount(st.total_deposited))],
      ["withdrawn in total", el("span", { id: "st-released" }, amount(st.total_released))],
    ]);
    $("st-weights-caption").textContent = onChain
      ? "Contribution weights set on chain (basis points of the revenue)"
      : "Contribution weights proposed (not on chain yet; basis points of the revenue)";
    $("st-weights-chart").replaceChildren(rows.length ? weightsChart(rows, roomFor($("st-weights-chart"), 720)) : el("p", { class: "muted" }, "No weights proposed for this job yet."));

    const weights = proposal && proposal.weights;
    const leafOnChain = st.contribution_record_leaf;
    const recordRows = proposal
      ? [
          ["step", el("span", { id: "st-record-seq" }, String(proposal.proposal.seq)), null],
          ["method", proposal.proposal.method],
          ["record hash", el("code", { id: "st-record-hash" }, proposal.proposal.record_hash)],
          ["leaf", el("code", { id: "st-record-leaf" }, proposal.proposal.record_leaf)],
          ["anchoring", statusBadge(proposal.chain_status)],
          ["batch root", weights ? el("code", { id: "st-record-root" }, weights.root) : "\u2013"],
          [
            "proof",
            weights
              ? el(
                  "span",
                  {},
                  el("ol", { id: "st-proof", class: "plain proof", start: 0 }, ...weights.proof.map((p) => el("li", {}, el("code", {}, p)))),
                  weights.proof.length ? null : el("span", { class: "muted" }, "empty: the record is its batch's only leaf, so its leaf is the root"),
                )
              : "\u2013",
          ],
          ["anchored in", receipt ? txCell(receipt.tx_hash) : "\u2013"],
          ["block", receipt ? String(receipt.block_number) : "\u2013"],
          [
            "the chain's weights name",
            leafOnChain
              ? el("span", { id: "st-leaf-verdict", class: leafOnChain.toLowerCase() === String(proposal.proposal.record_leaf).toLowerCase() ? "sig-ok" : "sig-bad", "data-matches": String(leafOnChain.toLowerCase() === String(proposal.proposal.record_leaf).toLowerCase()) }, leafOnChain.toLowerCase() === String(proposal.proposal.record_leaf).toLowerCase() ? "this record (the same leaf)" : "ANOTHER record: " + leafOnChain)
              : el("span", { class: "muted", id: "st-leaf-verdict", "data-matches": "null" }, "no weights on chain yet"),
          ],
        ]
      : [["record", el("span", { class: "muted" }, leafOnChain ? "set on chain from the record leaf " + leafOnChain + " (no proposal through this API)" : "no contribution proposed through this API")]];
    definitions($("st-record"), recordRows);
    if (receipt) {
      const load = el("button", { type: "button", class: "secondary", id: "st-load-receipt" }, "Load its receipt into \u201cVerify in my browser\u201d");
      load.addEventListener("click", () => loadReceipt(jobId, receipt.seq, load));
      $("st-record").append(el("dt", {}, "verify"), el("dd", {}, load));
    }

    const events = Array.isArray(history.events) ? history.events : [];
    const approvedOnChain = new Set(events.filter((e) => e.name === "WeightsApproved").map((e) => String(e.args.party).toLowerCase()));
    const approvals = proposal && Array.isArray(proposal.approvals) ? proposal.approvals : [];
    $("st-approvals-body").replaceChildren(
      ...approvals.map((a) =>
        el(
          "tr",
          { "data-party": a.party, "data-signed": String(a.signed), "data-on-chain": String(a.on_chain) },
          el("td", {}, el("code", { class: "address" }, a.party)),
          el("td", {}, a.signed ? el("span", { class: "sig-ok" }, "signed (EIP-712)") : el("span", { class: "muted" }, "not signed")),
          el(
            "td",
            {},
            a.on_chain || approvedOnChain.has(String(a.party).toLowerCase())
              ? el("span", { class: "sig-ok" }, "approved on chain (approveWeights)")
              : a.signed && st.weights_set
                ? el("span", { class: "sig-ok" }, "its signature was checked on chain when the weights were set")
                : el("span", { class: "muted" }, "not yet"),
          ),
        ),
      ),
    );
    $("st-balances-body").replaceChildren(
      ...(st.balances || []).map((b) =>
        el(
          "tr",
          { "data-member": b.member },
          el("td", {}, el("code", { class: "address" }, b.member)),
          el("td", { class: "bps" }, String(b.bps)),
          el("td", { class: "entitled" }, amount(b.entitled)),
          el("td", { class: "released" }, amount(b.released)),
          el("td", { class: "releasable" }, amount(b.releasable)),
        ),
      ),
    );
    $("st-history-body").replaceChildren(
      ...events.map((e, i) => {
        const who = e.args.member || e.args.depositor || e.args.party || e.args.setBy || "";
        return el(
          "tr",
          { class: "st-event", "data-event": e.name, "data-index": i },
          el("td", {}, e.name),
          el("td", {}, who ? hash(String(who)) : "\u2013"),
          el("td", {}, e.args.amount !== undefined ? amount(e.args.amount) : "\u2013"),
          el("td", {}, String(e.block_number)),
          el("td", {}, txCell(e.tx_hash)),
        );
      }),
    );
    $("st-history-empty").hidden = events.length > 0;
    $("st-status").textContent = "";
    $("settlement-section").dataset.loaded = "true";
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
    $("bundle-download").addEventListener("click", downloadBundle);
    $("ov-refresh").addEventListener("click", loadOverview);
    $("search-form").addEventListener("submit", submitSearch);
    $("models-refresh").addEventListener("click", () => loadModels(false));
    $("models-more").addEventListener("click", () => loadModels(true));
    $("settlement-refresh").addEventListener("click", () => state.settlement && loadSettlement(state.settlement));
    $("ov-hours").addEventListener("change", loadOverview);
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
