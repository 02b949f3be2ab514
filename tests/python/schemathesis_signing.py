"""Schemathesis hooks: every request the fuzzer sends is signed as one Tally party, and
generated queries keep the rules between parameters that OpenAPI cannot say.

Tally's API names the caller by an RFC 9421 HTTP Message Signature (wire/src/signature.rs):
the label `tally` over `@method @authority @path @query` and, when there is a body, its
`content-digest` (RFC 9530, sha-256), with `created`, `keyid` and `alg="ed25519"`. The
signature is made here, on the request exactly as `requests` will send it (a requests auth
hook sees the final URL and body bytes), with the party's key from its Tally key file.

The audit routes take a block range by heights (`from`, `to`) or by block time (`from_ms`,
`to_ms`), never both, with its first end at or before its last and at most 10,000 blocks
(the document says so in words); `filter_query` drops generated queries that break these
rules (and a `floor` at or above its `threshold`), so a 400 for any other reason is still
a finding.

Environment: TALLY_FUZZ_KEY (a key file: JSON with `secret_seed` in hex) and
TALLY_FUZZ_KEYID (`institution:ID` or `account:ID`). Used by tests/tests/openapi_fuzz.rs.
"""

import base64
import hashlib
import json
import os
import time
from urllib.parse import urlsplit

import requests
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

with open(os.environ["TALLY_FUZZ_KEY"], encoding="utf-8") as key_file:
    _KEY = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(json.load(key_file)["secret_seed"]))
_KEYID = os.environ["TALLY_FUZZ_KEYID"]


def _authority(url):
    """The host as `Host` carries it: lower case, the port only when not the scheme's own."""
    host = (url.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"https": 443, "http": 80}.get(url.scheme)
    return host if url.port in (None, default) else f"{host}:{url.port}"


class Rfc9421(requests.auth.AuthBase):
    """Signs a prepared request: its final method, URL and body bytes."""

    def __call__(self, request):
        url = urlsplit(request.url)
        body = request.body.encode() if isinstance(request.body, str) else request.body
        covered = ["@method", "@authority", "@path", "@query"]
        lines = [
            f'"@method": {request.method}',
            f'"@authority": {_authority(url)}',
            f'"@path": {url.path or "/"}',
            f'"@query": ?{url.query}',
        ]
        if body:
            digest = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
            request.headers["Content-Digest"] = digest
            covered.append("content-digest")
            lines.append(f'"content-digest": {digest}')
        components = " ".join(f'"{name}"' for name in covered)
        params = f'({components});created={int(time.time())};keyid="{_KEYID}";alg="ed25519"'
        lines.append(f'"@signature-params": {params}')
        signature = _KEY.sign("\n".join(lines).encode())
        request.headers["Signature-Input"] = f"tally={params}"
        request.headers["Signature"] = "tally=:" + base64.b64encode(signature).decode() + ":"
        return request


@schemathesis.hook
def before_call(ctx, case, kwargs):
    kwargs["auth"] = Rfc9421()


RANGE_BLOCKS_MAX = 10_000
THRESHOLD_DEFAULT = 5_000_000


@schemathesis.hook
def filter_query(ctx, query):
    if not query:
        return True
    by_height = "from" in query or "to" in query
    by_time = "from_ms" in query or "to_ms" in query
    if by_height and by_time:
        return False
    first, last = query.get("from"), query.get("to")
    if isinstance(first, int) and isinstance(last, int):
        if first > last or last - first >= RANGE_BLOCKS_MAX:
            return False
    first_ms, last_ms = query.get("from_ms"), query.get("to_ms")
    if isinstance(first_ms, int) and isinstance(last_ms, int) and first_ms > last_ms:
        return False
    # "just below" the large-transaction threshold starts at `floor`, below the threshold.
    floor, threshold = query.get("floor"), query.get("threshold", THRESHOLD_DEFAULT)
    if isinstance(floor, int) and isinstance(threshold, int) and floor >= threshold:
        return False
    return True
