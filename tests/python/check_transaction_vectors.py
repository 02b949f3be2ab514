#!/usr/bin/env python3
"""Rebuilds every byte of docs/transaction-vectors.json from docs/transaction-encoding.md.

A second implementation of Tally's transaction encoding, signing and id, written from the
document alone, with the Python standard library and the `cryptography` package (ed25519).
For each vector it encodes the JSON transaction (§2-§4), frames the signing message (§5),
signs with each seed and sorts the signatures, assembles the signed bytes (§1) and hashes
the id (§6, BLAKE3 written out below: the standard library has none), and compares each
with the file. It also checks each payment code's signature (§5). If the document leaves
something out, this script cannot produce the bytes and says which vector and field differ.

Usage: check_transaction_vectors.py [VECTORS_JSON]   (default: docs/transaction-vectors.json)
Exit status 0 when every vector matches, 1 with the differences otherwise, 2 when the
`cryptography` package is missing.
"""

import json
import struct
import sys
from pathlib import Path

try:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
except ImportError:
    print("the Python package `cryptography` is missing: pip install cryptography", file=sys.stderr)
    sys.exit(2)


# --- §2: the encoding rules -------------------------------------------------------------

def varint(n):
    if n < 0:
        raise ValueError(f"negative varint {n}")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def fixed(length):
    """A fixed byte array: hex in JSON (keys, hashes, signatures), written with no length."""

    def encode(value):
        data = bytes(value) if isinstance(value, list) else bytes.fromhex(value)
        if len(data) != length:
            raise ValueError(f"expected {length} bytes, got {len(data)}")
        return data

    return encode


def uint(bits):
    def encode(value):
        if not isinstance(value, int) or not 0 <= value < (1 << bits):
            raise ValueError(f"not a u{bits}: {value!r}")
        return varint(value)

    return encode


def u8(value):
    if not isinstance(value, int) or not 0 <= value < 256:
        raise ValueError(f"not a u8: {value!r}")
    return bytes([value])


def boolean(value):
    if not isinstance(value, bool):
        raise ValueError(f"not a bool: {value!r}")
    return b"\x01" if value else b"\x00"


def string(value):
    data = value.encode("utf-8")
    return varint(len(data)) + data


def hex_vec(value):
    data = bytes.fromhex(value)
    return varint(len(data)) + data


def option(inner):
    def encode(value):
        return b"\x00" if value is None else b"\x01" + encode_as(inner, value)

    return encode


def vec(inner):
    def encode(value):
        return varint(len(value)) + b"".join(encode_as(inner, item) for item in value)

    return encode


U16, U32, U64, U128 = uint(16), uint(32), uint(64), uint(128)
ACCOUNT = TRANSFER = ORDER = BILL = U128
INSTITUTION = U32
CYCLE = AMOUNT = TIME = U64
CURRENCY = fixed(3)
KEY = HASH = CARD = ENCRYPTION_KEY = BYTES32 = fixed(32)
SIGNATURE = fixed(64)
MEMO = string
ROLES = u8

# Structs: their fields in order. Enums: their variants in order, each with no payload
# (None), one value (a type), or fields (a list of (name, type)).
STRUCTS = {
    "Transaction": [("chain_id", string), ("sender", "Party"), ("nonce", U64), ("kind", "TxKind")],
    "PaymentCode": [
        ("payer", ACCOUNT), ("payer_key", KEY), ("max_amount", AMOUNT), ("issued_at_ms", TIME),
        ("expires_at_ms", TIME), ("code_nonce", U64), ("merchant", option(ACCOUNT)),
    ],
    "SealedTravelRule": [
        ("recipient", INSTITUTION), ("key", ENCRYPTION_KEY), ("encapsulated", BYTES32),
        ("ciphertext", hex_vec),
    ],
}

ENUMS = {
    "Party": [("Account", ACCOUNT), ("Institution", INSTITUTION)],
    "PaymentSource": [("Balance", None), ("Card", CARD)],
    "FxAmount": [
        ("Send", [("debit", AMOUNT), ("min_credit", AMOUNT)]),
        ("Receive", [("credit", AMOUNT), ("max_debit", AMOUNT)]),
    ],
    "Disputed": [("Order", ORDER), ("Bill", BILL), ("Payment", TRANSFER)],
    "DisputeReason": [
        (name, None)
        for name in ["NotReceived", "NotAsDescribed", "Unauthorized", "Duplicate", "Cancelled",
                     "IncorrectAmount"]
    ],
    "DisputeOutcome": [("Refund", None), ("Release", None)],
    "GovernanceAction": [
        ("AddInstitution", [("id", INSTITUTION), ("key", KEY), ("roles", ROLES), ("name", string)]),
        ("SetIssuanceLimit", [("bank", INSTITUTION), ("currency", CURRENCY), ("limit", AMOUNT)]),
        ("SetFxCreditLine", [("provider", INSTITUTION), ("currency", CURRENCY), ("limit", AMOUNT)]),
        ("SetTierLimits", [
            ("tier", u8), ("single_max", AMOUNT), ("daily_max", AMOUNT), ("yearly_max", AMOUNT),
            ("cross_border_yearly_max", AMOUNT),
        ]),
        ("SetFeeSchedule", [("merchant_fee_bps_max", U16)]),
        ("SetCorridor", [("from", CURRENCY), ("to", CURRENCY), ("single_max", AMOUNT)]),
        ("SetDisputeRules", [("window_ms", U64), ("decision_ms", U64), ("default", "DisputeOutcome")]),
        ("SetTravelRuleThreshold", [("currency", CURRENCY), ("threshold", AMOUNT)]),
        ("ReplaceInstitutionKey", [("institution", INSTITUTION), ("new_key", KEY)]),
        ("RevokeInstitutionKey", [("institution", INSTITUTION)]),
        ("SetRecoveryDelay", [("delay_ms", U64)]),
    ],
    "TxKind": [
        ("Govern", "GovernanceAction"),
        ("RegisterAccount", [
            ("account", ACCOUNT), ("key", KEY), ("currency", CURRENCY),
            ("institution", INSTITUTION), ("tier", u8), ("identity", HASH),
        ]),
        ("BindCard", [("card", CARD), ("bank", INSTITUTION)]),
        ("UnbindCard", [("card", CARD)]),
        ("TopUp", [("id", TRANSFER), ("card", CARD), ("amount", AMOUNT)]),
        ("Withdraw", [("id", TRANSFER), ("card", CARD), ("amount", AMOUNT)]),
        ("Transfer", [("id", TRANSFER), ("to", ACCOUNT), ("amount", AMOUNT), ("memo", MEMO)]),
        ("RotateKey", [("new_key", KEY)]),
        ("RecoverAccount", [("account", ACCOUNT), ("new_key", KEY)]),
        ("SetSecondFactor", [("key", option(KEY)), ("threshold", AMOUNT)]),
        ("CancelRecovery", None),
        ("RegisterMerchant", [
            ("account", ACCOUNT), ("key", KEY), ("currency", CURRENCY), ("fee_bps", U16),
            ("identity", HASH),
        ]),
        ("CreateOrder", [
            ("order", ORDER), ("amount", AMOUNT), ("currency", CURRENCY),
            ("expires_at_ms", TIME), ("items", HASH),
        ]),
        ("PayOrder", [
            ("id", TRANSFER), ("order", ORDER), ("source", "PaymentSource"),
            ("escrow_ms", option(U64)),
        ]),
        ("ConfirmReceipt", [("order", ORDER)]),
        ("AuthorizeCardPayment", [("order", ORDER), ("approve", boolean)]),
        ("CancelOrder", [("order", ORDER)]),
        ("Refund", [("id", TRANSFER), ("order", ORDER), ("amount", AMOUNT)]),
        ("CollectByCode", [
            ("id", TRANSFER), ("code", "PaymentCode"), ("code_signature", SIGNATURE),
            ("amount", AMOUNT),
        ]),
        ("PayMerchant", [
            ("id", TRANSFER), ("merchant", ACCOUNT), ("amount", AMOUNT), ("reference", MEMO),
        ]),
        ("SettleMerchant", [("id", TRANSFER), ("amount", AMOUNT)]),
        ("RegisterBiller", [
            ("account", ACCOUNT), ("key", KEY), ("currency", CURRENCY), ("identity", HASH),
        ]),
        ("IssueBill", [("bill", BILL), ("customer", HASH), ("amount", AMOUNT), ("due_ms", TIME)]),
        ("PayBill", [("id", TRANSFER), ("bill", BILL), ("amount", AMOUNT)]),
        ("PublishFxRate", [
            ("base", CURRENCY), ("quote", CURRENCY), ("rate", U64), ("valid_from_ms", TIME),
            ("valid_until_ms", TIME),
        ]),
        ("CrossBorderTransfer", [
            ("id", TRANSFER), ("provider", INSTITUTION), ("beneficiary", ACCOUNT),
            ("amount", "FxAmount"), ("travel_rule", vec("SealedTravelRule")),
        ]),
        ("SettlementCycle", None),
        ("ConfirmSettlement", [("cycle", CYCLE)]),
        ("Freeze", [("account", ACCOUNT), ("reason", HASH)]),
        ("Unfreeze", [("account", ACCOUNT)]),
        ("AddSanction", [("identity", HASH)]),
        ("RemoveSanction", [("identity", HASH)]),
        ("OpenDispute", [("id", TRANSFER), ("disputed", "Disputed"), ("reason", "DisputeReason")]),
        ("DecideDispute", [("disputed", "Disputed"), ("outcome", "DisputeOutcome")]),
        ("RequestRefund", [("order", ORDER), ("amount", AMOUNT)]),
        ("AcceptRefundRequest", [("id", TRANSFER), ("order", ORDER)]),
        ("RefuseRefundRequest", [("order", ORDER)]),
        ("SetEncryptionKey", [("key", ENCRYPTION_KEY)]),
    ],
}


def encode_fields(fields, value):
    if set(value) != {name for name, _ in fields}:
        raise ValueError(f"fields {sorted(value)} are not {[name for name, _ in fields]}")
    return b"".join(encode_as(kind, value[name]) for name, kind in fields)


def encode_enum(variants, value):
    # JSON: a unit variant is its name; any other is {"Name": payload}.
    if isinstance(value, str):
        name, payload = value, None
    elif isinstance(value, dict) and len(value) == 1:
        (name, payload), = value.items()
    else:
        raise ValueError(f"not an enum value: {value!r}")
    for index, (variant, kind) in enumerate(variants):
        if variant != name:
            continue
        if kind is None:
            return varint(index)
        if isinstance(kind, list):
            return varint(index) + encode_fields(kind, payload)
        return varint(index) + encode_as(kind, payload)
    raise ValueError(f"no variant {name}")


def encode_as(kind, value):
    if callable(kind):
        return kind(value)
    if kind in STRUCTS:
        return encode_fields(STRUCTS[kind], value)
    return encode_enum(ENUMS[kind], value)


# --- §5: what a key signs ---------------------------------------------------------------

def signing_message(domain, chain_id, message):
    domain, chain_id = domain.encode(), chain_id.encode()
    return (b"tally-sig-v1" + struct.pack("<I", len(domain)) + domain
            + struct.pack("<I", len(chain_id)) + chain_id + message)


# --- §6: the id, with BLAKE3 (the hash mode of the BLAKE3 specification, any length) ------

IV = [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB,
      0x5BE0CD19]
PERMUTATION = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8]
CHUNK_START, CHUNK_END, PARENT, ROOT = 1, 2, 4, 8
MASK = 0xFFFFFFFF


def rotate_right(x, n):
    return ((x >> n) | (x << (32 - n))) & MASK


def mix(s, a, b, c, d, x, y):
    s[a] = (s[a] + s[b] + x) & MASK
    s[d] = rotate_right(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & MASK
    s[b] = rotate_right(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b] + y) & MASK
    s[d] = rotate_right(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & MASK
    s[b] = rotate_right(s[b] ^ s[c], 7)


def compress(cv, block, counter, block_len, flags):
    """The first 8 words of the compression output: a chaining value or a 32-byte root."""
    m = list(struct.unpack("<16I", block.ljust(64, b"\0")))
    s = list(cv) + IV[:4] + [counter & MASK, counter >> 32, block_len, flags]
    for round_ in range(7):
        mix(s, 0, 4, 8, 12, m[0], m[1])
        mix(s, 1, 5, 9, 13, m[2], m[3])
        mix(s, 2, 6, 10, 14, m[4], m[5])
        mix(s, 3, 7, 11, 15, m[6], m[7])
        mix(s, 0, 5, 10, 15, m[8], m[9])
        mix(s, 1, 6, 11, 12, m[10], m[11])
        mix(s, 2, 7, 8, 13, m[12], m[13])
        mix(s, 3, 4, 9, 14, m[14], m[15])
        if round_ < 6:
            m = [m[i] for i in PERMUTATION]
    return [s[i] ^ s[i + 8] for i in range(8)]


def blake3(data):
    # An "output" is a compression not yet made, so the root's can take the ROOT flag.
    def chunk_output(chunk, index):
        blocks = [chunk[i:i + 64] for i in range(0, len(chunk), 64)] or [b""]
        cv = IV
        for j, block in enumerate(blocks[:-1]):
            cv = compress(cv, block, index, 64, CHUNK_START if j == 0 else 0)
        start = CHUNK_START if len(blocks) == 1 else 0
        return (cv, blocks[-1], index, len(blocks[-1]), start | CHUNK_END)

    def chaining_value(output):
        return compress(*output)

    def parent_output(left, right):
        return (IV, struct.pack("<16I", *left, *right), 0, 64, PARENT)

    chunks = [data[i:i + 1024] for i in range(0, len(data), 1024)] or [b""]
    stack = []
    for index, chunk in enumerate(chunks[:-1]):
        cv = chaining_value(chunk_output(chunk, index))
        done = index + 1
        while done % 2 == 0:  # a complete subtree: merge it with its left sibling
            cv = chaining_value(parent_output(stack.pop(), cv))
            done //= 2
        stack.append(cv)
    output = chunk_output(chunks[-1], len(chunks) - 1)
    while stack:
        output = parent_output(stack.pop(), chaining_value(output))
    cv, block, counter, block_len, flags = output
    return struct.pack("<8I", *compress(cv, block, counter, block_len, flags | ROOT))


def tx_id(body, keys):
    builder = b"tally-hash-v1"
    for field in [b"tally-tx-id", body, *keys]:
        builder += struct.pack("<Q", len(field)) + field
    return blake3(builder)


# --- the check ---------------------------------------------------------------------------

def public_key(private):
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def check_vector(vector, chain_id, domain):
    """The differences between what this script builds and the vector (empty if none)."""
    problems = []

    def same(what, built, published):
        if built.hex() != published:
            problems.append(f"{what}: built {built.hex()}, published {published}")

    tx = vector["transaction"]
    body = encode_as("Transaction", tx)
    same("body", body, vector["body"])
    message = signing_message(domain, tx["chain_id"], body)
    same("signing message", message, vector["signing_message"])
    signers = [Ed25519PrivateKey.from_private_bytes(bytes.fromhex(s)) for s in vector["signer_seeds"]]
    signatures = sorted((public_key(k), k.sign(message)) for k in signers)
    for (key, signature), published in zip(signatures, vector["signatures"]):
        same("key", key, published["key"])
        same("signature", signature, published["signature"])
        Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
    if len(signatures) != len(vector["signatures"]):
        problems.append(f"{len(signatures)} signers, {len(vector['signatures'])} signatures published")
    signed = body + varint(len(signatures)) + b"".join(k + s for k, s in signatures)
    same("signed bytes", signed, vector["signed"])
    same("id", tx_id(body, [k for k, _ in signatures]), vector["id"])
    kind = tx["kind"]
    if isinstance(kind, dict) and "CollectByCode" in kind:
        collect = kind["CollectByCode"]
        code = collect["code"]
        code_message = signing_message("tally-payment-code", chain_id,
                                       encode_as("PaymentCode", code))
        try:
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(code["payer_key"])).verify(
                bytes.fromhex(collect["code_signature"]), code_message)
        except Exception as error:  # cryptography raises InvalidSignature
            problems.append(f"payment code signature does not verify: {error!r}")
    return problems


def main():
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else (
        Path(__file__).resolve().parents[2] / "docs" / "transaction-vectors.json")
    document = json.loads(path.read_text())
    # BLAKE3's own test: the hash of no input (from the BLAKE3 specification's vectors).
    empty = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    if blake3(b"").hex() != empty:
        print("this script's BLAKE3 is wrong on the empty input", file=sys.stderr)
        return 1
    failed = 0
    longest = 0
    for vector in document["vectors"]:
        try:
            problems = check_vector(vector, document["chain_id"], document["signature_domain"])
        except (ValueError, KeyError, TypeError) as error:
            problems = [f"cannot build it: {error!r}"]
        longest = max(longest, len(vector["body"]) // 2)
        if problems:
            failed += 1
            print(f"FAIL {vector['name']}", file=sys.stderr)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
    count = len(document["vectors"])
    print(f"{count - failed} of {count} transaction vectors rebuilt byte for byte from "
          f"docs/transaction-encoding.md (longest body {longest} bytes)")
    return 1 if failed or count == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
