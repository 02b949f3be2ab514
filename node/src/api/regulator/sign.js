// The regulator's actions, built and signed in the browser: the transaction's bytes exactly
// as docs/transaction-encoding.md gives them (postcard; §5's signature framing; §6's id),
// signed with the WebCrypto key the page signed in with. The key never leaves the tab and the
// node gets only the signed bytes, which it checks like any other transaction's.
//
// Only what the page sends: Freeze (28), Unfreeze (29), AddSanction (30), RemoveSanction (31),
// each sent by an institution (Party 1). A case reference is hashed as the `tally` command
// hashes it (BLAKE3 under the domain "tally-case-reference", or taken as is when it is 64
// hex digits), so the same case gives the same reason from the page and the command line.
"use strict";

const TallyTx = (() => {
  const ascii = (text) => new TextEncoder().encode(text);

  function concat(parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    parts.forEach((p) => { out.set(p, at); at += p.length; });
    return out;
  }

  // Unsigned LEB128, shortest form: postcard's integers.
  function varint(value) {
    let v = BigInt(value);
    if (v < 0n) throw Object.assign(new Error("a negative integer"), { code: "BAD_FIELD" });
    const out = [];
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v) byte |= 0x80;
      out.push(byte);
    } while (v);
    return Uint8Array.from(out);
  }

  function littleEndian(value, bytes) {
    const out = new Uint8Array(bytes);
    let v = BigInt(value);
    for (let i = 0; i < bytes; i++) { out[i] = Number(v & 0xffn); v >>= 8n; }
    return out;
  }

  function string(text) {
    const bytes = ascii(text);
    return concat([varint(bytes.length), bytes]);
  }

  function hexBytes(hex, length, what) {
    if (typeof hex !== "string" || hex.length !== length * 2 || !/^[0-9a-fA-F]*$/.test(hex)) {
      throw Object.assign(new Error(what + " is " + length * 2 + " hex digits"), { code: "BAD_FIELD" });
    }
    return Uint8Array.from(hex.match(/../g).map((h) => parseInt(h, 16)));
  }

  function toHex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // BLAKE3 (32-byte output) of an input of at most one chunk, 1024 bytes: all the page
  // hashes (a case reference of up to 512 bytes, framed). The compression function as the
  // BLAKE3 paper specifies it; a longer input is refused rather than hashed wrongly.
  const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
  const PERMUTATION = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
  const CHUNK_START = 1;
  const CHUNK_END = 2;
  const ROOT = 8;

  function compress(cv, words, blockLength, flags) {
    const s = Uint32Array.from([...cv, IV[0], IV[1], IV[2], IV[3], 0, 0, blockLength, flags]);
    const rotr = (x, n) => (x >>> n) | (x << (32 - n));
    const g = (a, b, c, d, x, y) => {
      s[a] = s[a] + s[b] + x; s[d] = rotr(s[d] ^ s[a], 16);
      s[c] = s[c] + s[d]; s[b] = rotr(s[b] ^ s[c], 12);
      s[a] = s[a] + s[b] + y; s[d] = rotr(s[d] ^ s[a], 8);
      s[c] = s[c] + s[d]; s[b] = rotr(s[b] ^ s[c], 7);
    };
    let m = Array.from(words);
    for (let round = 0; round < 7; round++) {
      g(0, 4, 8, 12, m[0], m[1]); g(1, 5, 9, 13, m[2], m[3]);
      g(2, 6, 10, 14, m[4], m[5]); g(3, 7, 11, 15, m[6], m[7]);
      g(0, 5, 10, 15, m[8], m[9]); g(1, 6, 11, 12, m[10], m[11]);
      g(2, 7, 8, 13, m[12], m[13]); g(3, 4, 9, 14, m[14], m[15]);
      m = PERMUTATION.map((i) => m[i]);
    }
    return Array.from({ length: 8 }, (_, i) => (s[i] ^ s[i + 8]) >>> 0);
  }

  function blake3(input) {
    if (input.length > 1024) throw Object.assign(new Error("too long to hash here"), { code: "BAD_FIELD" });
    const blocks = Math.max(1, Math.ceil(input.length / 64));
    let cv = IV.slice();
    for (let b = 0; b < blocks; b++) {
      const block = new Uint8Array(64);
      const part = input.subarray(b * 64, b * 64 + 64);
      block.set(part);
      const view = new DataView(block.buffer);
      const words = Array.from({ length: 16 }, (_, i) => view.getUint32(i * 4, true));
      const flags = (b === 0 ? CHUNK_START : 0) | (b === blocks - 1 ? CHUNK_END | ROOT : 0);
      cv = compress(cv, words, part.length, flags);
    }
    const out = new Uint8Array(32);
    const view = new DataView(out.buffer);
    cv.forEach((w, i) => view.setUint32(i * 4, w, true));
    return out;
  }

  // `Hash::digest(domain, bytes)`: "tally-hash-v1", then the domain and the bytes, each after
  // its length as a little-endian u64.
  function digest(domain, bytes) {
    const d = ascii(domain);
    return blake3(concat([ascii("tally-hash-v1"), littleEndian(d.length, 8), d, littleEndian(bytes.length, 8), bytes]));
  }

  const CASE_REFERENCE_DOMAIN = "tally-case-reference";
  const CASE_REFERENCE_BYTES_MAX = 512;

  function caseReference(text) {
    const trimmed = String(text || "").trim();
    if (!trimmed) throw Object.assign(new Error("name the case (a reference)"), { code: "BAD_FIELD" });
    if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return hexBytes(trimmed, 32, "a reason");
    const bytes = ascii(String(text));
    if (bytes.length > CASE_REFERENCE_BYTES_MAX) {
      throw Object.assign(new Error("a case reference is at most " + CASE_REFERENCE_BYTES_MAX + " bytes"), { code: "BAD_FIELD" });
    }
    return digest(CASE_REFERENCE_DOMAIN, bytes);
  }

  function accountId(text) {
    if (!/^[0-9]{1,39}$/.test(String(text).trim())) {
      throw Object.assign(new Error("an account id is a decimal number"), { code: "BAD_FIELD" });
    }
    const id = BigInt(String(text).trim());
    if (id >= 1n << 128n) throw Object.assign(new Error("an account id is below 2^128"), { code: "BAD_FIELD" });
    return id;
  }

  // The `TxKind` bytes of one regulator action.
  function kind(action, target, reason) {
    switch (action) {
      case "freeze": return concat([varint(28), varint(accountId(target)), caseReference(reason)]);
      case "unfreeze": return concat([varint(29), varint(accountId(target))]);
      case "add-sanction": return concat([varint(30), hexBytes(String(target).trim(), 32, "an identity")]);
      case "remove-sanction": return concat([varint(31), hexBytes(String(target).trim(), 32, "an identity")]);
      default: throw Object.assign(new Error("no such action: " + action), { code: "BAD_FIELD" });
    }
  }

  // §3: chain id, sender `Institution(id)`, nonce, kind.
  function body(chainId, institution, nonce, kindBytes) {
    return concat([string(chainId), varint(1), varint(institution), varint(nonce), kindBytes]);
  }

  // §5 and §1: one signature by `key` (whose public key is `publicKey`), appended to the body.
  async function sign(key, publicKey, chainId, bodyBytes) {
    const domain = ascii("tally-tx");
    const chain = ascii(chainId);
    const message = concat([ascii("tally-sig-v1"), littleEndian(domain.length, 4), domain,
      littleEndian(chain.length, 4), chain, bodyBytes]);
    const signature = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key, message));
    return concat([bodyBytes, varint(1), publicKey, signature]);
  }

  // §6: the id the node names the transaction by.
  function id(bodyBytes, publicKey) {
    const d = ascii("tally-tx-id");
    return toHex(blake3(concat([ascii("tally-hash-v1"), littleEndian(d.length, 8), d,
      littleEndian(bodyBytes.length, 8), bodyBytes, littleEndian(32, 8), publicKey])));
  }

  return { body, kind, sign, id, digest, caseReference, toHex, hexBytes };
})();
