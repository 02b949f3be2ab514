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
const BLOCKS_SHOWN = 10;
const API = "../v1";

function $(id) { return document.getElementById(id); }

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

function row(cells, numeric) {
  const tr = el("tr");
  cells.forEach((c, i) => tr.appendChild(el("td", c, numeric && numeric.includes(i) ? "num" : "")));
  return tr;
}

// Institutions' accounts have ids above 2^127, beyond what a JSON number holds exactly:
// name them by their institution instead.
function account(id, institution) {
  return Number.isSafeInteger(id) ? String(id) : "institution " + institution;
}

function time(ms) { return ms ? new Date(Number(ms)).toISOString().replace("T", " ").replace(".000Z", "Z") : ""; }
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
  return crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, false, ["sign"]);
}

async function signIn(keyid, seedHex) {
  if (!/^(institution|account):[0-9]{1,39}$/.test(keyid)) {
    throw Object.assign(new Error("name the party as institution:ID"), { code: "BAD_PARTY" });
  }
  credential = { keyid: keyid, key: await importSeed(seedHex) };
  $("signed-in-as").textContent = keyid;
  document.body.dataset.signedIn = keyid;
}

function signOut() {
  credential = null;
  $("signed-in-as").textContent = "nobody";
  delete document.body.dataset.signedIn;
}

// The Signature-Input and Signature headers for a GET of `url`: the method, authority,
// path and query are covered, as the node requires.
async function signedHeaders(method, url) {
  if (!credential) return {};
  const target = new URL(url, window.location.href);
  const created = Math.floor(Date.now() / 1000);
  const params = "(\"@method\" \"@authority\" \"@path\" \"@query\");created=" + created +
    ";keyid=\"" + credential.keyid + "\";alg=\"ed25519\"";
  const base = "\"@method\": " + method + "\n" +
    "\"@authority\": " + target.host.toLowerCase() + "\n" +
    "\"@path\": " + target.pathname + "\n" +
    "\"@query\": ?" + target.search.slice(1) + "\n" +
    "\"@signature-params\": " + params;
  const signature = await crypto.subtle.sign({ name: "Ed25519" }, credential.key, new TextEncoder().encode(base));
  return { "Signature-Input": "tally=" + params, "Signature": "tally=:" + base64(signature) + ":" };
}

async function signedFetch(url) {
  return fetch(url, { cache: "no-store", headers: await signedHeaders("GET", url) });
}

// A JSON answer, or an Error carrying the API's stable code.
async function api(path) {
  const response = await signedFetch(path.startsWith("/") ? path : API + "/" + path);
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
    $("head-time").textContent = time(latest.header.time_ms);
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

async function refreshBlocks(head) {
  const body = $("blocks");
  if (!head) { clear(body); return; }
  const heights = [];
  for (let h = head; h >= 1 && heights.length < BLOCKS_SHOWN; h--) heights.push(h);
  const blocks = await Promise.all(heights.map((h) => api("blocks/" + h).catch(() => null)));
  clear(body);
  blocks.filter(Boolean).forEach((b) => body.appendChild(row(
    [b.height, time(b.header.time_ms), b.txs ? b.txs.length : "–", b.evidence.length, short(b.header.proposer)], [0, 2, 3])));
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
    p.open.positions.forEach((x) => positions.appendChild(row([x.currency, x.institution, x.net], [2])));
    const flows = $("flows");
    clear(flows);
    p.flows.forEach((x) => flows.appendChild(row([x.currency, x.institution, x.paid, x.received, x.net], [2, 3, 4])));
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
      [m.height, time(m.time_ms), m.kind, account(m.from, m.from_institution),
        account(m.to, m.to_institution), m.amount + " " + m.currency, short(m.hash)], [0, 5])));
  } catch (error) {
    clear(body);
    body.appendChild(row([(error.code || "") + " " + error.message]));
  }
}

// A table body's one row saying why it is empty or cut short.
function note(body, text) {
  const tr = row([text]);
  tr.className = "note";
  tr.firstChild.colSpan = body.parentNode.querySelectorAll("th").length || 1;
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
      const tr = row([short(a.person), a.currency, a.count, a.sum, time(a.first_ms), time(a.last_ms),
        a.accounts.join(" ")], [2, 3]);
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
        d.amount + " " + d.currency, d.reason, d.decider, time(d.opened_at_ms), duration(d.age_ms),
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

async function refreshSanctioned() {
  const body = $("sanctioned");
  try {
    const page = await api("audit/sanctioned?limit=100");
    clear(body);
    page.identities.forEach((listed) => {
      const accounts = listed.accounts.length ? listed.accounts : [null];
      accounts.forEach((a) => {
        const tr = a
          ? row([short(listed.identity), account(a.id, a.institution), a.kind, a.institution,
            a.balance + " " + a.currency, a.frozen ? "frozen" : ""], [4])
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
    if (signed) {
      pairs.push(["Time", time(block.header.time_ms)]);
      pairs.push(["Sender", JSON.stringify(signed.tx.sender)]);
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

async function searchAccount(id, target) {
  const view = await api("accounts/" + id);
  const history = await api("accounts/" + id + "/history?limit=20");
  const a = view.account;
  clear(target);
  const result = definitionList([
    ["Account", id], ["Kind", a.kind], ["Institution", a.institution], ["Balance", view.balance],
    ["Available", view.available], ["Frozen", a.frozen ? "yes" : "no"], ["At height", view.height],
  ]);
  result.id = "account-result";
  target.appendChild(result);
  const table = el("table");
  history.entries.forEach((e) => table.appendChild(row([e.height + ":" + e.index, e.code,
    Object.keys(e.transaction.tx.kind)[0] || "", short(e.hash)])));
  target.appendChild(table);
}

async function search(query) {
  const target = $("search-result");
  const q = query.trim();
  if (!q) return;
  target.textContent = "searching…";
  try {
    if (/^[0-9a-fA-F]{64}$/.test(q)) await searchTransaction(q.toLowerCase(), target);
    else if (/^[0-9]+$/.test(q)) await searchAccount(q, target);
    else throw Object.assign(new Error("enter a 64-digit transaction hash or a decimal account id"), { code: "BAD_SEARCH" });
  } catch (error) {
    showError(target, error);
  }
}

async function refresh() {
  try {
    const head = await refreshHead();
    await Promise.all([refreshBlocks(head), refreshValidators()]);
    // The audit scans one after the other: the node runs only a few at a time.
    await refreshPositions();
    await refreshLarge();
    await refreshStructuring();
    await refreshDisputes();
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
    const response = await signedFetch(API + "/" + path);
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
  } catch (error) {
    showError(target, error);
  }
}

// `#credential=institution:ID:SEEDHEX`: read once, then removed from the address bar and
// from this history entry before anything else runs.
async function signInFromFragment() {
  const match = /^#credential=((?:institution|account):[0-9]+):([0-9a-fA-F]{64})$/.exec(window.location.hash);
  if (!match) return;
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
  try {
    await signIn(match[1], match[2]);
  } catch (error) {
    showError($("sign-in-status"), error);
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
  await signInFromFragment();
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    search($("search-input").value);
  });
  $("large-form").addEventListener("submit", (event) => {
    event.preventDefault();
    refreshLarge().then(refreshStructuring);
  });
  const params = new URLSearchParams(window.location.search);
  if (params.get("threshold")) $("threshold").value = params.get("threshold");
  const asked = params.get("tx") || params.get("account");
  if (asked) {
    $("search-input").value = asked;
    search(asked);
  }
  refresh();
});
