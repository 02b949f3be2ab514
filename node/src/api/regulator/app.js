// The regulator's page: polls the node's JSON API (same origin) and renders with DOM
// methods only (textContent), so nothing read from the chain is ever parsed as HTML.
//
// Signing in: the node answers its ledger data and reports to the regulator alone, so the
// page signs every request as the regulator's institution (RFC 9421 HTTP Message
// Signatures, ed25519, the scheme every Tally client uses). The key is read from the
// institution's key file (or, for automation, from the address's fragment, which never
// leaves the browser and is dropped from the address bar at once), imported into WebCrypto
// as a non-extractable key, and kept in this tab's memory only: reloading signs out.
"use strict";

const POLL_MS = 5000;
// The latest blocks with transactions or evidence shown, looking back at most this far:
// an idle chain's heartbeat blocks are folded into one row per run.
const BLOCKS_SHOWN = 10;
const BLOCKS_SCANNED_MAX = 100;
// Charts are redrawn this often (each is an audit scan), and when asked.
const CHARTS_POLL_MS = 60000;
const API = "../v1";

function $(id) { return document.getElementById(id); }

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

// A table row. A cell is text, or `{ text, title, find }`: more on hover, and a link that
// opens `find` (an account id or a transaction hash) in the search section.
function row(cells, numeric) {
  const tr = el("tr");
  cells.forEach((c, i) => {
    const cell = c !== null && typeof c === "object" ? c : { text: c };
    const td = el("td", cell.find ? undefined : cell.text, numeric && numeric.includes(i) ? "num" : "");
    if (cell.title) td.title = cell.title;
    if (cell.find) td.appendChild(findLink(cell.text, cell.find));
    tr.appendChild(td);
  });
  return tr;
}

// A link that shows `query` in the search section (the page stays signed in: no reload).
// Its address is the page's own with `?account=` or `?tx=`, for a script or a new tab.
function findLink(text, query) {
  const link = el("a", text);
  link.href = "?" + (/^[0-9a-fA-F]{64}$/.test(query) ? "tx=" : "account=") + encodeURIComponent(query);
  link.dataset.find = query;
  link.addEventListener("click", (event) => {
    event.preventDefault();
    $("search-input").value = query;
    search(query);
    $("search-section").scrollIntoView();
  });
  return link;
}

// Who is who, from `/v1/directory` once signed in: institutions' names by id, currencies'
// decimals by code. Until it is read, ids and minor units are shown as they are.
let directory = { names: new Map(), decimals: new Map() };

async function refreshDirectory() {
  const d = await api("directory");
  directory = {
    names: new Map(d.record.institutions.map((i) => [Number(i.id), i.name])),
    decimals: new Map(d.record.currencies.filter((c) => c.decimals !== undefined).map((c) => [c.code, c.decimals])),
  };
}

function institution(id) {
  const name = directory.names.get(Number(id));
  return name === undefined ? "institution " + id : name;
}

// The symbols people in the corridor read; any other currency is written after the amount.
const SYMBOLS = { CNY: "¥", HKD: "HK$", USD: "US$", EUR: "€", GBP: "£", JPY: "JP¥" };

// Minor units as the currency's major units, exactly (BigInt, never a float): 22090 CNY is
// "¥220.90", -5 HKD is "-HK$0.05". A currency of unknown decimals keeps its minor units.
// JSON numbers above 2^53 arrive rounded by the browser's parser: such an amount (above
// 90 trillion yuan) is marked "≈".
function money(minor, currency) {
  if (minor === null || minor === undefined || minor === "") return "";
  const code = String(currency);
  const exact = Number.isSafeInteger(Number(minor)) ? "" : "≈";
  let n = BigInt(Math.trunc(Number(minor)));
  const sign = n < 0n ? "-" : "";
  if (n < 0n) n = -n;
  const decimals = directory.decimals.get(code);
  if (decimals === undefined) return exact + sign + String(n) + " " + code + " (minor units)";
  const scale = 10n ** BigInt(decimals);
  const whole = (n / scale).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const fraction = decimals ? "." + (n % scale).toString().padStart(decimals, "0") : "";
  const symbol = SYMBOLS[code];
  return exact + sign + (symbol ? symbol + whole + fraction : whole + fraction + " " + code);
}

// A currency as the API writes it: a code ("CNY"), or in ledger records its three bytes.
function currencyCode(c) {
  return Array.isArray(c) ? String.fromCharCode(...c) : String(c);
}

// An amount cell: formatted, with the ledger's minor units on hover.
function amount(minor, currency) {
  return { text: money(minor, currency), title: minor + " " + currency + " minor units" };
}

// An account by id, kind and holder institution: "wallet 100 · Bank A". Institutions' own
// accounts have ids above 2^127, beyond what a JSON number holds exactly: they are named
// by their institution and kind alone.
function account(id, holder, kind) {
  const what = kindWords(kind);
  const known = !(holder === undefined || holder === null || holder === "");
  if (Number.isSafeInteger(id)) return what + " " + id + (known ? " · " + institution(holder) : "");
  return known ? institution(holder) + " " + what : "an institution's account";
}

function kindWords(kind) {
  return kind ? String(kind).replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase() : "account";
}

// An account cell that drills down to the account (ids a JSON number holds exactly).
function accountCell(id, holder, kind) {
  const text = account(id, holder, kind);
  return Number.isSafeInteger(id) ? { text: text, find: String(id) } : text;
}

// A time cell: in the viewer's time zone, UTC on hover.
function time(ms) {
  if (!ms) return "";
  const at = new Date(Number(ms));
  return { text: at.toLocaleString(), title: at.toISOString().replace("T", " ").replace(".000Z", "Z") + " UTC" };
}
function timeText(ms) { return ms ? time(ms).text : ""; }
function short(hex) { return hex ? String(hex).slice(0, 16) + "…" : ""; }

// The signed-in party: { keyid: "institution:ID", key: CryptoKey } or null.
let credential = null;

function base64(bytes) {
  let text = "";
  new Uint8Array(bytes).forEach((b) => { text += String.fromCharCode(b); });
  return btoa(text);
}

function hexBytes(hex) {
  if (!/^([0-9a-fA-F]{2})+$/.test(hex)) throw Object.assign(new Error("not hex"), { code: "BAD_KEY" });
  return Uint8Array.from(hex.match(/../g).map((h) => parseInt(h, 16)));
}

// An ed25519 private key from its 32-byte seed: PKCS #8 as RFC 8410 section 7 frames it.
async function importSeed(seedHex) {
  const seed = hexBytes(seedHex);
  if (seed.length !== 32) throw Object.assign(new Error("a key's seed is 32 bytes"), { code: "BAD_KEY" });
  const prefix = hexBytes("302e020100300506032b657004220420");
  const pkcs8 = new Uint8Array(prefix.length + seed.length);
  pkcs8.set(prefix);
  pkcs8.set(seed, prefix.length);
  const key = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, false, ["sign"]);
  // The public key a transaction carries beside its signature, read from a second import
  // that is dropped at once: the key kept signs and cannot be exported.
  const once = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, true, ["sign"]);
  const x = (await crypto.subtle.exportKey("jwk", once)).x.replace(/-/g, "+").replace(/_/g, "/");
  const publicKey = Uint8Array.from(atob(x.padEnd(Math.ceil(x.length / 4) * 4, "=")), (c) => c.charCodeAt(0));
  pkcs8.fill(0);
  return { key, publicKey };
}

async function signIn(keyid, seedHex) {
  if (!/^(institution|account):[0-9]{1,39}$/.test(keyid)) {
    throw Object.assign(new Error("name the party as institution:ID"), { code: "BAD_PARTY" });
  }
  const imported = await importSeed(seedHex);
  credential = { keyid: keyid, key: imported.key, publicKey: imported.publicKey };
  $("signed-in-as").textContent = keyid;
  document.body.dataset.signedIn = keyid;
  try {
    await refreshDirectory();
    const id = /^institution:([0-9]+)$/.exec(keyid);
    if (id) $("signed-in-as").textContent = institution(id[1]) + " (" + keyid + ")";
  } catch (error) {
    showError($("sign-in-status"), error);
  }
}

function signOut() {
  credential = null;
  directory = { names: new Map(), decimals: new Map() };
  $("signed-in-as").textContent = "nobody";
  delete document.body.dataset.signedIn;
}

// The Signature-Input and Signature headers for a request of `url`: the method, authority,
// path and query are covered, as the node requires; with a body, its Content-Digest too.
async function signedHeaders(method, url, body) {
  if (!credential) return {};
  const target = new URL(url, window.location.href);
  const created = Math.floor(Date.now() / 1000);
  const headers = {};
  let components = "\"@method\" \"@authority\" \"@path\" \"@query\"";
  let digestLine = "";
  if (body !== undefined) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body));
    headers["Content-Digest"] = "sha-256=:" + base64(digest) + ":";
    components += " \"content-digest\"";
    digestLine = "\"content-digest\": " + headers["Content-Digest"] + "\n";
  }
  const params = "(" + components + ");created=" + created +
    ";keyid=\"" + credential.keyid + "\";alg=\"ed25519\"";
  const base = "\"@method\": " + method + "\n" +
    "\"@authority\": " + target.host.toLowerCase() + "\n" +
    "\"@path\": " + target.pathname + "\n" +
    "\"@query\": ?" + target.search.slice(1) + "\n" +
    digestLine +
    "\"@signature-params\": " + params;
  const signature = await crypto.subtle.sign({ name: "Ed25519" }, credential.key, new TextEncoder().encode(base));
  headers["Signature-Input"] = "tally=" + params;
  headers["Signature"] = "tally=:" + base64(signature) + ":";
  return headers;
}

async function signedFetch(url) {
  return fetch(url, { cache: "no-store", headers: await signedHeaders("GET", url) });
}

// The node runs two audit scans at a time per client and answers a third 429: the page's
// scans (tables, charts, statements, downloads) go one after another through this queue.
let scanQueue = Promise.resolve();

function queued(work) {
  const result = scanQueue.then(work);
  scanQueue = result.catch(() => null);
  return result;
}

function isScan(url) { return /\/v1\/audit\//.test(url) || url.startsWith("audit/"); }

// A JSON answer, or an Error carrying the API's stable code.
async function api(path) {
  const url = path.startsWith("/") ? path : API + "/" + path;
  const response = await (isScan(url) ? queued(() => signedFetch(url)) : signedFetch(url));
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const error = new Error((body && body.message) || response.statusText);
    error.code = (body && body.code) || String(response.status);
    error.status = response.status;
    throw error;
  }
  return body;
}

function showError(target, error) {
  clear(target);
  target.appendChild(el("p", (error.code ? error.code + ": " : "") + error.message, "error"));
}

async function refreshHead() {
  const alerts = [];
  try {
    const health = await api("/health");
    $("node-mode").textContent = health.mode;
    $("verified-height").textContent = health.verified_height === undefined ? "–" : health.verified_height;
    alerts.push({ ok: true, text: "Node healthy (" + health.mode + ")" });
  } catch (error) {
    alerts.push({ ok: false, text: error.code === "AUDIT_ALARM" ? "AUDIT ALARM: " + error.message : "Health: " + error.message });
  }
  let head = null;
  try {
    const latest = await api("blocks/latest");
    head = latest.height;
    $("head-height").textContent = head;
    $("head-time").textContent = timeText(latest.header.time_ms);
    $("head-time").title = time(latest.header.time_ms).title;
  } catch (error) {
    $("head-height").textContent = error.status === 404 ? "0" : "?";
  }
  try {
    const evidence = await api("evidence");
    evidence.items.forEach((item) => alerts.push({
      ok: false,
      text: "Equivocation in block " + item.height + ": " + Object.keys(item.evidence)[0],
    }));
  } catch (error) {
    alerts.push({ ok: false, text: "Evidence: " + error.message });
  }
  const list = $("alerts");
  clear(list);
  alerts.forEach((a) => list.appendChild(el("li", a.text, a.ok ? "ok" : "alarm")));
  return head;
}

// A block is empty when it carries no transaction and no evidence. Blocks are read
// newest first, a batch at a time, until BLOCKS_SHOWN non-empty ones or BLOCKS_SCANNED_MAX
// heights; each run of empty blocks becomes one folded row. Signed out, the node does not
// show transactions, so nothing is folded.
function isEmptyBlock(b) { return b.txs && b.txs.length === 0 && b.evidence.length === 0; }

async function refreshBlocks(head) {
  const body = $("blocks");
  if (!head) { clear(body); return; }
  const read = [];
  let shown = 0;
  for (let top = head; top >= 1 && read.length < BLOCKS_SCANNED_MAX && shown < BLOCKS_SHOWN; top -= BLOCKS_SHOWN) {
    const heights = [];
    for (let h = top; h >= 1 && h > top - BLOCKS_SHOWN; h--) heights.push(h);
    const blocks = await Promise.all(heights.map((h) => api("blocks/" + h).catch(() => null)));
    blocks.filter(Boolean).forEach((b) => {
      if (shown < BLOCKS_SHOWN) read.push(b);
      if (!isEmptyBlock(b)) shown += 1;
    });
  }
  clear(body);
  let empty = [];
  const fold = () => {
    if (!empty.length) return;
    const span = empty.length === 1 ? "height " + empty[0] : "heights " + empty[empty.length - 1] + "–" + empty[0];
    const tr = row([empty.length + " empty block" + (empty.length === 1 ? "" : "s") + " (" + span + ") folded"]);
    tr.className = "note folded";
    tr.firstChild.colSpan = 5;
    body.appendChild(tr);
    empty = [];
  };
  read.forEach((b) => {
    if (isEmptyBlock(b)) { empty.push(b.height); return; }
    fold();
    body.appendChild(row([b.height, time(b.header.time_ms), b.txs ? b.txs.length : "–", b.evidence.length,
      short(b.header.proposer)], [0, 2, 3]));
  });
  fold();
}

async function refreshValidators() {
  const target = $("validators");
  try {
    const v = await api("validators");
    clear(target);
    target.appendChild(el("p", "Block " + v.height + ", round " + v.round + ", proposer " + short(v.proposer) +
      ", signed by " + v.signers.length));
    const sets = (v.in_force ? [["In force since " + v.in_force.from_height, v.in_force]] : [])
      .concat(v.scheduled.map((s) => ["Scheduled from " + s.from_height, s]));
    sets.forEach(([title, set]) => {
      target.appendChild(el("h3", title));
      const table = el("table");
      set.validators.forEach((x) => table.appendChild(row([x.index, x.public_key, "power " + x.power], [0])));
      target.appendChild(table);
    });
  } catch (error) {
    showError(target, error);
  }
}

async function refreshPositions() {
  try {
    const p = await api("audit/net-positions");
    const positions = $("positions");
    clear(positions);
    p.open.positions.forEach((x) => positions.appendChild(row([x.currency, institution(x.institution),
      amount(x.net, x.currency)], [2])));
    const flows = $("flows");
    clear(flows);
    p.flows.forEach((x) => flows.appendChild(row([x.currency, institution(x.institution), amount(x.paid, x.currency),
      amount(x.received, x.currency), amount(x.net, x.currency)], [2, 3, 4])));
  } catch (error) {
    showError($("positions"), error);
  }
}

async function refreshLarge() {
  const threshold = $("threshold").value.trim() || "1";
  const body = $("large");
  try {
    const large = await api("audit/large-transactions?threshold=" + encodeURIComponent(threshold));
    clear(body);
    large.items.slice().reverse().forEach((m) => body.appendChild(row(
      [m.height, time(m.time_ms), m.kind, accountCell(m.from, m.from_institution, m.from_kind),
        accountCell(m.to, m.to_institution, m.to_kind), amount(m.amount, m.currency),
        m.hash ? { text: short(m.hash), find: m.hash } : ""], [0, 5])));
  } catch (error) {
    clear(body);
    body.appendChild(row([(error.code || "") + " " + error.message]));
  }
}

// A table body's one row saying why it is empty or cut short.
function note(body, text) {
  const tr = row([text]);
  tr.className = "note";
  const table = body.parentNode;
  tr.firstChild.colSpan = (table ? table.querySelectorAll("th").length : 0) || 1;
  body.appendChild(tr);
}

function failed(body, error) {
  clear(body);
  note(body, (error.code ? error.code + ": " : "") + error.message);
}

// "3d 4h 5m 6s" from milliseconds, largest unit first.
function duration(ms) {
  let s = Math.floor(Number(ms) / 1000);
  const parts = [];
  [["d", 86400], ["h", 3600], ["m", 60]].forEach(([unit, size]) => {
    if (s >= size || parts.length) parts.push(Math.floor(s / size) + unit);
    s %= size;
  });
  parts.push(s + "s");
  return parts.join(" ");
}

// `{ "Order": 7 }` as "order 7".
function disputedText(disputed) {
  const kind = Object.keys(disputed || {})[0];
  return kind ? kind.toLowerCase() + " " + disputed[kind] : "";
}

async function refreshStructuring() {
  const threshold = $("threshold").value.trim() || "1";
  const body = $("structuring");
  try {
    const found = await api("audit/structuring?threshold=" + encodeURIComponent(threshold));
    clear(body);
    found.alerts.forEach((a) => {
      const tr = row([short(a.person), a.currency, a.count, amount(a.sum, a.currency), time(a.first_ms),
        time(a.last_ms), a.accounts.join(" ")], [2, 3]);
      tr.firstChild.title = a.person;
      body.appendChild(tr);
    });
    if (!found.alerts.length) note(body, "none in the latest blocks");
    if (found.truncated) note(body, "more alerts than shown: narrow the range in the report");
  } catch (error) {
    failed(body, error);
  }
}

async function refreshDisputes() {
  const body = $("disputes");
  try {
    const page = await api("audit/disputes?limit=100");
    clear(body);
    page.disputes.forEach((d) => {
      const tr = row([disputedText(d.disputed), account(d.payer, ""), account(d.merchant, ""),
        amount(d.amount, d.currency), d.reason, institution(d.decider), time(d.opened_at_ms), duration(d.age_ms),
        time(d.deadline_ms)], [3]);
      tr.dataset.ageMs = d.age_ms;
      body.appendChild(tr);
    });
    if (!page.disputes.length) note(body, "none open");
    if (page.next_after) note(body, "older first; more are open than shown (the report lists up to 1000)");
  } catch (error) {
    failed(body, error);
  }
}

async function refreshFrozen() {
  const body = $("frozen");
  try {
    const view = await api("audit/frozen?limit=100");
    clear(body);
    view.accounts.forEach((a) => body.appendChild(row([accountCell(a.id, "", a.kind), institution(a.institution),
      amount(a.balance, a.currency)], [2])));
    if (!view.accounts.length) note(body, "none frozen");
    if (view.next_after) note(body, "more are frozen than shown (the report lists them all)");
  } catch (error) {
    failed(body, error);
  }
}

const ALERT_WORDS = {
  audit_alarm: "Audit alarm", large_transaction: "Large transaction", structuring: "Structuring",
  stopped: "Stopped by a freeze or sanction", dispute_ageing: "Dispute ageing", missed_votes: "Missed votes",
};

// The alerts with this node's triage: open ones first, each with a note field and an
// Acknowledge button; acknowledged ones say by whom, when, and the note.
async function refreshTriage() {
  const threshold = $("threshold").value.trim() || "1";
  const body = $("triage");
  try {
    const found = await api("audit/alerts?threshold=" + encodeURIComponent(threshold));
    $("triage-open").textContent = found.open;
    clear(body);
    found.alerts.forEach((a) => {
      const drill = a.tx ? { text: short(a.tx), find: a.tx }
        : Number.isSafeInteger(a.account) ? { text: "account " + a.account, find: String(a.account) } : "";
      const tr = row([ALERT_WORDS[a.kind] || a.kind, a.summary, time(a.time_ms), drill,
        a.first_seen_ms ? time(a.first_seen_ms) : "not kept here (a validator)", ""]);
      tr.dataset.key = a.key;
      tr.dataset.kind = a.kind;
      const cell = tr.lastChild;
      if (!a.first_seen_ms) {
        cell.textContent = "triage on the audit node";
      } else if (a.acknowledged) {
        tr.dataset.acknowledged = "true";
        cell.textContent = "acknowledged by " + institution(a.acknowledged.by) + ", " + timeText(a.acknowledged.at_ms) +
          (a.acknowledged.note ? ": " + a.acknowledged.note : "");
      } else {
        const remark = el("input");
        // At most 500 bytes of UTF-8: the node says so if a note is longer.
        remark.placeholder = "note";
        const button = el("button", "Acknowledge");
        button.type = "button";
        button.addEventListener("click", () => acknowledge(a.key, remark.value));
        cell.appendChild(remark);
        cell.appendChild(button);
      }
      body.appendChild(tr);
    });
    if (!found.alerts.length) note(body, "none in the latest blocks");
    if (found.truncated) note(body, "a source was cut at its bound: narrow the range in the report");
  } catch (error) {
    failed(body, error);
  }
}

// Records the acknowledgement on this node (a signed POST whose body's digest the signature
// covers), then reads the alerts again. The outcome goes to the triage status line.
async function acknowledge(key, text) {
  const status = $("triage-status");
  clear(status);
  delete status.dataset.code;
  try {
    const url = API + "/audit/alerts/acknowledge";
    const payload = JSON.stringify({ key: key, note: text });
    const headers = await signedHeaders("POST", url, payload);
    headers["Content-Type"] = "application/json";
    const response = await fetch(url, { method: "POST", cache: "no-store", headers: headers, body: payload });
    const answer = await response.json().catch(() => null);
    if (!response.ok) {
      throw Object.assign(new Error((answer && answer.message) || response.statusText),
        { code: (answer && answer.code) || String(response.status) });
    }
    status.textContent = "acknowledged: " + key;
    status.dataset.code = "OK";
    await refreshTriage();
  } catch (error) {
    showError(status, error);
    status.dataset.code = error.code || "ERROR";
  }
}

const ACTION_WORDS = {
  "freeze": "frozen", "unfreeze": "unfrozen", "add-sanction": "added to the sanctions list",
  "remove-sanction": "removed from the sanctions list",
};

// Builds the action's transaction, signs it in this tab (sign.js) with the signed-in
// institution's key and next nonce, submits it and waits for its block: shows it committed,
// or refused with the ledger's code (a party without the regulator's role is refused
// ROLE_REQUIRED by every validator, whatever this page lets it try). Served by an audit
// node, the page's transaction is relayed to the validators (a regulator's alone: anyone
// else's is refused READ_ONLY there).
async function act(action, target, reason) {
  const status = $("act-status");
  const send = $("act-form").querySelector("button[type=submit]");
  clear(status);
  delete status.dataset.code;
  // One action at a time: a second sent meanwhile would reuse the nonce and be refused.
  send.disabled = true;
  try {
    const keyid = credential && /^institution:([0-9]+)$/.exec(credential.keyid);
    if (!keyid) throw Object.assign(new Error("sign in as the regulator's institution first"), { code: "NOT_SIGNED_IN" });
    const kind = TallyTx.kind(action, target, reason);
    status.textContent = "signing…";
    const [self, latest] = await Promise.all([api("institutions/" + keyid[1]), api("blocks/latest")]);
    const chainId = latest.header.chain_id;
    const body = TallyTx.body(chainId, keyid[1], self.record.institution.nonce, kind);
    const signed = await TallyTx.sign(credential.key, credential.publicKey, chainId, body);
    const id = TallyTx.id(body, credential.publicKey);
    status.textContent = "sent, waiting for its block…";
    const response = await fetch(API + "/transactions?wait_ms=15000", {
      method: "POST", cache: "no-store", headers: { "Content-Type": "application/octet-stream" }, body: signed,
    });
    const answer = await response.json().catch(() => null);
    if (!response.ok) {
      throw Object.assign(new Error((answer && answer.message) || response.statusText),
        { code: (answer && answer.code) || String(response.status) });
    }
    if (answer.hash !== id) {
      throw Object.assign(new Error("the node names the transaction " + answer.hash + ", this page computed " + id +
        ": the page's encoding is wrong"), { code: "ID_MISMATCH" });
    }
    if (answer.status !== "committed") {
      status.textContent = "not committed yet: transaction " + answer.hash + " (search for it)";
      status.dataset.code = "PENDING";
      return;
    }
    status.textContent = String(target).trim() + " " + ACTION_WORDS[action] + ": committed at height " +
      answer.height + ", transaction " + short(answer.hash);
    status.dataset.code = answer.code;
    status.dataset.hash = answer.hash;
    await refreshFrozen();
    await refreshSanctioned();
  } catch (error) {
    showError(status, error);
    status.dataset.code = error.code || "ERROR";
  } finally {
    send.disabled = false;
  }
}

async function refreshSanctioned() {
  const body = $("sanctioned");
  try {
    const page = await api("audit/sanctioned?limit=100");
    clear(body);
    page.identities.forEach((listed) => {
      const accounts = listed.accounts.length ? listed.accounts : [null];
      accounts.forEach((a) => {
        const tr = a
          ? row([short(listed.identity), accountCell(a.id, "", a.kind), a.kind, institution(a.institution),
            amount(a.balance, a.currency), a.frozen ? "frozen" : ""], [4])
          : row([short(listed.identity), "no account"]);
        tr.firstChild.title = listed.identity;
        body.appendChild(tr);
      });
    });
    if (!page.identities.length) note(body, "nobody listed");
    if (page.next_cursor) note(body, "more are listed than shown (the report lists up to 1000)");
  } catch (error) {
    failed(body, error);
  }
}

function definitionList(pairs) {
  const dl = el("dl", null, "result");
  pairs.forEach(([k, v]) => { dl.appendChild(el("dt", k)); dl.appendChild(el("dd", v)); });
  return dl;
}

async function searchTransaction(hash, target) {
  const tx = await api("transactions/" + hash);
  const pairs = [["Transaction", tx.hash], ["Status", tx.status]];
  if (tx.status === "committed") {
    pairs.push(["Block", tx.height], ["Index", tx.index], ["Result", tx.code]);
    const block = await api("blocks/" + tx.height);
    const signed = block.txs ? block.txs[tx.index] : null;
    pairs.push(["Block hash", block.hash]);
    pairs.push(["Certificate", "round " + block.certificate.round + ", signed by " +
      block.certificate.signatures.length + " validator" + (block.certificate.signatures.length === 1 ? "" : "s")]);
    if (signed) {
      pairs.push(["Time", timeText(block.header.time_ms)]);
      pairs.push(["Sender", party(signed.tx.sender)]);
      pairs.push(["Kind", Object.keys(signed.tx.kind)[0] || String(signed.tx.kind)]);
    }
    tx.events.forEach((e) => pairs.push(["Event " + e.id, e.kind + " " + JSON.stringify(e.event[e.kind])]));
  }
  clear(target);
  const result = definitionList(pairs);
  result.id = "tx-result";
  result.dataset.status = tx.status;
  target.appendChild(result);
}

// A transaction's sender, `{ "Account": 100 }` or `{ "Institution": 1 }`, in words.
function party(sender) {
  if (sender && sender.Institution !== undefined) return institution(sender.Institution);
  if (sender && sender.Account !== undefined) return "account " + sender.Account;
  return JSON.stringify(sender);
}

// The most statement lines shown; the report downloads have them all.
const STATEMENT_LINES_SHOWN = 200;

// An account: holder institution, kind, flags and limits, then its statement over the
// latest blocks (the audit scan's default range) with the balance after each line.
async function searchAccount(id, target) {
  const view = await api("accounts/" + id);
  const statement = await api("audit/accounts/" + id + "/statement");
  const a = view.account;
  const c = currencyCode(a.currency);
  const pairs = [
    ["Account", kindWords(a.kind) + " " + id], ["Institution", institution(a.institution)], ["Currency", c],
    ["Balance", money(view.balance, c)], ["Available", money(view.available, c)],
    ["Pending", "debits " + money(a.debits_pending, c) + ", credits " + money(a.credits_pending, c)],
    ["Frozen", a.frozen ? "yes" : "no"],
  ];
  if (Number(a.overdraft_limit) > 0) pairs.push(["May go below zero by", money(a.overdraft_limit, c)]);
  if (a.holder && (a.kind === "ConsumerWallet" || a.kind === "Merchant" || a.kind === "Biller")) {
    pairs.push(["Tier", a.holder.tier]);
    if (a.holder.second_factor) pairs.push(["Second factor above", money(a.holder.second_factor.threshold, c)]);
    if (a.kind === "Merchant") pairs.push(["Merchant fee", a.holder.merchant_fee_bps + " bp"]);
    pairs.push(["Outflow today", money(a.holder.outflow_today, c)]);
  }
  const limits = view.tier_limits;
  if (limits) {
    const cap = (n) => (BigInt(Math.trunc(Number(n))) >= 2n ** 63n ? "no cap" : money(n, c));
    pairs.push(["Tier limits", "single " + cap(limits.single_max) + ", daily " + cap(limits.daily_max) +
      ", yearly " + cap(limits.yearly_max)]);
  }
  pairs.push(["At height", view.height]);
  clear(target);
  const result = definitionList(pairs);
  result.id = "account-result";
  target.appendChild(result);

  target.appendChild(el("h3", "Statement, blocks " + statement.range.from + " to " + statement.range.to));
  const table = el("table");
  const head = el("thead");
  head.appendChild(row(["Block", "Time", "Kind", "Counterparty", "Debit", "Credit", "Balance"]));
  table.appendChild(head);
  const body = el("tbody");
  body.id = "statement";
  table.appendChild(body);
  const opening = row(["", "", "opening balance", "", "", "", amount(statement.opening_balance, c)], [6]);
  opening.className = "note";
  body.appendChild(opening);
  const shown = statement.entries.slice(-STATEMENT_LINES_SHOWN);
  if (shown.length < statement.entries.length) {
    note(body, (statement.entries.length - shown.length) + " earlier lines not shown (the report has them)");
  }
  shown.forEach((e) => {
    const tr = row([e.hash ? { text: e.height + ":" + e.index, find: e.hash } : String(e.height), time(e.time_ms), e.kind,
      accountCell(e.counterparty, "", ""), e.debit ? amount(e.debit, c) : "", e.credit ? amount(e.credit, c) : "",
      amount(e.balance_after, c)], [4, 5, 6]);
    tr.dataset.balanceAfter = e.balance_after;
    body.appendChild(tr);
  });
  const closing = row(["", "", "closing balance", "", amount(statement.total_debits, c), amount(statement.total_credits, c),
    amount(statement.closing_balance, c)], [4, 5, 6]);
  closing.className = "note";
  body.appendChild(closing);
  target.appendChild(table);
}

// An institution: its roles, open obligations and net positions if netted now.
async function searchInstitution(id, target) {
  const view = await api("institutions/" + id);
  const i = view.record.institution;
  clear(target);
  const result = definitionList([
    ["Institution", i.name + " (" + i.id + ")"], ["Key", i.key ? short(i.key) : "revoked"],
    ["Nonce", i.nonce], ["At height", view.height],
  ]);
  result.id = "institution-result";
  target.appendChild(result);
  target.appendChild(el("h3", "Net positions if netted now"));
  const positions = el("table");
  view.record.positions.forEach((p) => {
    const c = currencyCode(p.currency);
    positions.appendChild(row([c, amount(p.net, c)], [1]));
  });
  if (!view.record.positions.length) positions.appendChild(row(["none open"]));
  target.appendChild(positions);
  target.appendChild(el("h3", "Open obligations"));
  const obligations = el("table");
  view.record.open_obligations.forEach((o) => obligations.appendChild(row([institution(o.from) + " owes " +
    institution(o.to), amount(o.amount, currencyCode(o.currency))], [1])));
  if (!view.record.open_obligations.length) obligations.appendChild(row(["none"]));
  target.appendChild(obligations);
}

// "institution:3", "3" with an "institution" prefix, or an institution's name.
function institutionQuery(q) {
  const byId = /^institution[: ]\s*([0-9]{1,10})$/i.exec(q);
  if (byId) return byId[1];
  const wanted = q.toLowerCase();
  for (const [id, name] of directory.names) if (name.toLowerCase() === wanted) return String(id);
  return null;
}

async function search(query) {
  const target = $("search-result");
  const q = query.trim();
  if (!q) return;
  target.textContent = "searching…";
  try {
    const institutionId = institutionQuery(q);
    if (/^[0-9a-fA-F]{64}$/.test(q)) await searchTransaction(q.toLowerCase(), target);
    else if (/^[0-9]+$/.test(q)) await searchAccount(q, target);
    else if (institutionId !== null) await searchInstitution(institutionId, target);
    else throw Object.assign(new Error("enter a 64-digit transaction hash, a decimal account id, or an institution's name"), { code: "BAD_SEARCH" });
  } catch (error) {
    showError(target, error);
  }
}

// Each chart: the SVG the node draws, the series the figures come from, and the table of
// those figures (the same numbers the chart plots, and the CSV's rows).
const CHARTS = [
  { name: "payments", series: "payments", caption: "Money movements per bucket, by currency" },
  { name: "volume", series: "payments", caption: "Volume per bucket, by currency (major units)" },
  { name: "flows", series: "flows", caption: "Net interbank flow of each institution since the range's start" },
  { name: "corridors", series: "corridors", caption: "Remittances per corridor (debited currency)" },
  { name: "blocks", series: "blocks", caption: "Blocks and transactions per bucket (with the latency's figures)" },
  { name: "latency", series: "blocks", table: false,
    caption: "Proposal to commit on this audit node (its lag behind the chain): median and largest" },
];
let chartUrls = [];

function figureTable(series, activity) {
  const table = el("table");
  const body = el("tbody");
  body.id = "activity-" + series;
  const head = el("thead");
  table.appendChild(head);
  table.appendChild(body);
  const add = (cells, numeric, data) => {
    const tr = row(cells, numeric);
    Object.assign(tr.dataset, data);
    body.appendChild(tr);
  };
  if (series === "payments") {
    head.appendChild(row(["Bucket", "Currency", "Kind", "Count", "Volume"]));
    activity.payments.forEach((p) => add([time(p.start_ms), p.currency, p.kind, p.count, amount(p.volume, p.currency)],
      [3, 4], { kind: p.kind, count: p.count, volume: p.volume }));
  } else if (series === "flows") {
    head.appendChild(row(["Bucket", "Institution", "Net", "Since the start"]));
    activity.flows.forEach((f) => add([time(f.start_ms), institution(f.institution), amount(f.net, f.currency),
      amount(f.cumulative, f.currency)], [2, 3], { institution: f.institution, cumulative: f.cumulative }));
  } else if (series === "corridors") {
    head.appendChild(row(["Bucket", "Corridor", "Count", "Debited", "Credited"]));
    activity.corridors.forEach((c) => add([time(c.start_ms), c.from + "→" + c.to, c.count, amount(c.debited, c.from),
      amount(c.credited, c.to)], [2, 3, 4], { count: c.count, debited: c.debited }));
  } else {
    head.appendChild(row(["Bucket", "Blocks", "Transactions", "Lag, median", "Lag, largest"]));
    const seconds = (ms) => ms === null || ms === undefined ? "" : (Number(ms) / 1000).toFixed(3) + " s";
    activity.blocks.forEach((b) => add([time(b.start_ms), b.blocks, b.transactions, seconds(b.lag_ms_median),
      seconds(b.lag_ms_max)], [1, 2, 3, 4], { blocks: b.blocks, transactions: b.transactions,
      lagMedian: b.lag_ms_median === null ? "" : b.lag_ms_median, lagMax: b.lag_ms_max === null ? "" : b.lag_ms_max }));
  }
  if (!body.childNodes.length) note(body, "nothing in the range");
  return table;
}

// The block range the charts cover: `?from=&to=` in the page's address, else the audit
// scans' default (the latest 1,000 blocks). The charts and CSVs then ask for the very
// range the figures were read over, so all show the same blocks.
function chartRange() {
  const params = new URLSearchParams(window.location.search);
  return ["from", "to"].filter((k) => /^[0-9]{1,20}$/.test(params.get(k) || ""))
    .map((k) => "&" + k + "=" + params.get(k)).join("");
}

async function refreshCharts() {
  const target = $("charts");
  const bucket = $("bucket").value;
  try {
    const activity = await api("audit/activity?bucket=" + encodeURIComponent(bucket) + chartRange());
    const range = "&from=" + activity.range.from + "&to=" + activity.range.to;
    const figures = [];
    for (const chart of CHARTS) {
      const response = await queued(() => signedFetch(API + "/audit/charts/" + chart.name + "?bucket=" +
        encodeURIComponent(bucket) + range));
      if (!response.ok) throw Object.assign(new Error("chart " + chart.name + ": " + response.statusText), { code: String(response.status) });
      const figure = el("figure");
      figure.dataset.chart = chart.name;
      const image = el("img");
      image.alt = chart.caption;
      image.src = URL.createObjectURL(await response.blob());
      figure.appendChild(image);
      figure.appendChild(el("figcaption", chart.caption + " (blocks " + activity.range.from + " to " + activity.range.to + ")"));
      if (chart.name !== "volume" && chart.table !== false) {
        const details = el("details");
        details.appendChild(el("summary", "Figures"));
        details.appendChild(figureTable(chart.series, activity));
        const csv = el("button", "CSV");
        csv.type = "button";
        csv.addEventListener("click", () => download("audit/activity.csv?series=" + chart.series + "&bucket=" + bucket +
          range, "tally-" + chart.series + ".csv"));
        details.appendChild(csv);
        figure.appendChild(details);
      }
      figures.push(figure);
    }
    chartUrls.forEach((url) => URL.revokeObjectURL(url));
    chartUrls = figures.map((f) => f.querySelector("img").src);
    clear(target);
    figures.forEach((f) => target.appendChild(f));
  } catch (error) {
    showError(target, error);
  }
}

async function pollCharts() {
  try {
    if (credential) await refreshCharts();
  } finally {
    setTimeout(pollCharts, CHARTS_POLL_MS);
  }
}

async function refresh() {
  try {
    // Governance may add institutions: the directory is read again on every poll.
    if (credential) await refreshDirectory().catch(() => null);
    const head = await refreshHead();
    await Promise.all([refreshBlocks(head), refreshValidators()]);
    // The audit scans one after the other: the node runs only a few at a time.
    await refreshPositions();
    await refreshLarge();
    await refreshStructuring();
    await refreshTriage();
    await refreshDisputes();
    await refreshFrozen();
    await refreshSanctioned();
    $("updated").textContent = new Date().toISOString().slice(11, 19) + "Z";
  } finally {
    setTimeout(refresh, POLL_MS);
  }
}

// Downloads a report through a signed request (a plain link could not sign).
async function download(path, name) {
  const target = $("report-status");
  try {
    const response = await queued(() => signedFetch(API + "/" + path));
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      throw Object.assign(new Error((body && body.message) || response.statusText), { code: body && body.code });
    }
    const link = el("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = name;
    link.click();
    URL.revokeObjectURL(link.href);
    target.textContent = "";
  } catch (error) {
    showError(target, error);
  }
}

async function signInFromFile() {
  const target = $("sign-in-status");
  try {
    const file = $("sign-in-key").files[0];
    if (!file) throw Object.assign(new Error("choose the institution's key file"), { code: "BAD_KEY" });
    const keyFile = JSON.parse(await file.text());
    await signIn($("sign-in-party").value.trim(), String(keyFile.secret_seed || ""));
    target.textContent = "";
    refresh();
    refreshCharts();
  } catch (error) {
    showError(target, error);
  }
}

// `#credential=institution:ID:SEEDHEX`: read once, then removed from the address bar and
// from this history entry before anything else runs. True when it signed in.
async function signInFromFragment() {
  const match = /^#credential=((?:institution|account):[0-9]+):([0-9a-fA-F]{64})$/.exec(window.location.hash);
  if (!match) return false;
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
  try {
    await signIn(match[1], match[2]);
    return true;
  } catch (error) {
    showError($("sign-in-status"), error);
    return false;
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signInFromFile();
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("report-json").addEventListener("click", () => download("audit/report", "tally-report.json"));
  $("report-csv").addEventListener("click", () => download("audit/report.csv", "tally-report.csv"));
  const automated = await signInFromFragment();
  $("act-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act($("act-action").value, $("act-target").value, $("act-reason").value);
  });
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    search($("search-input").value);
  });
  $("charts-form").addEventListener("submit", (event) => {
    event.preventDefault();
    refreshCharts();
  });
  $("large-form").addEventListener("submit", (event) => {
    event.preventDefault();
    refreshLarge().then(refreshStructuring).then(refreshTriage);
  });
  const params = new URLSearchParams(window.location.search);
  if (params.get("threshold")) $("threshold").value = params.get("threshold");
  const asked = params.get("tx") || params.get("account") || params.get("institution");
  if (asked) {
    $("search-input").value = asked;
    search(asked);
  }
  // `?act=freeze&target=ID&reason=TEXT` fills the form in; it is sent by itself only for a
  // script that signed in through the address's fragment (and so holds the key). A link
  // followed by a person who then signs in with the key file is never sent unread.
  if (params.get("act")) {
    $("act-action").value = params.get("act");
    $("act-target").value = params.get("target") || "";
    $("act-reason").value = params.get("reason") || "";
    if (automated) await act(params.get("act"), params.get("target") || "", params.get("reason") || "");
  }
  // `?acknowledge=KEY&note=TEXT`: the same rule as `?act=`, sent only for a script signed
  // in through the fragment.
  if (params.get("acknowledge") && automated) await acknowledge(params.get("acknowledge"), params.get("note") || "");
  refresh();
  pollCharts();
});
