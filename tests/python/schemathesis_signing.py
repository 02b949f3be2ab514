"""Schemathesis hooks: every request the fuzzer sends is signed as one Tally party.

Tally's API names the caller by an RFC 9421 HTTP Message Signature (wire/src/signature.rs):
the label `tally` over `@method @authority @path @query` and, when there is a body, its
`content-digest` (RFC 9530, sha-256), with `created`, `keyid` and `alg="ed25519"`. The
signature is made here, on the request exactly as `requests` will send it (a requests auth
hook sees the final URL and body bytes), with the party's key from its Tally key file.

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


class Rfc9421(requests.auth.AuthBase):
    """Signs a prepared request: its final method, URL and body bytes."""

    def __call__(self, request):
        url = urlsplit(request.url)
        body = request.body.encode() if isinstance(request.body, str) else request.body
        covered = ["@method", "@authority", "@path", "@query"]
        lines = [
            f'"@method": {request.method}',
            f'"@authority": {url.netloc.lower()}',
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
