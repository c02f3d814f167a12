"""Verifies a JWS with two independent JOSE libraries, each picking the key from a JWKS by kid.

Usage: jose_verify.py JWKS_FILE ALG  (the JWT on stdin)

This is how strict relying parties select a client's key: the token's `kid` names one key of the
published set, and a key whose `alg` member names another algorithm is not a candidate (joserfc
does this itself; for jwcrypto, which does not, the script compares). Both must accept the token; otherwise the script exits non-zero with each
library's reason on stderr. Prints "ok" on success.
"""

import json
import sys

from joserfc import jws as rfc_jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from jwcrypto import jwk as cr_jwk
from jwcrypto import jws as cr_jws
from jwcrypto.common import JWException


def with_joserfc(jwks: dict, token: str, alg: str) -> str | None:
    try:
        keys = KeySet.import_key_set(jwks)
        # KeySet resolves the key from the header (kid, and the key's own alg if it has one).
        rfc_jws.deserialize_compact(token, keys, algorithms=[alg])
    except (JoseError, ValueError) as e:
        return f"joserfc: {type(e).__name__}: {e}"
    return None


def with_jwcrypto(jwks: dict, token: str, alg: str) -> str | None:
    try:
        keys = cr_jwk.JWKSet.from_json(json.dumps(jwks))
        sig = cr_jws.JWS()
        sig.deserialize(token)
        sig.allowed_algs = [alg]
        kid = sig.jose_header.get("kid")
        key = keys.get_key(kid) if kid is not None else None
        if key is None:
            return f"jwcrypto: no key for kid {kid!r}"
        # jwcrypto 1.6 does not compare a key's `alg` with the token's; relying parties that
        # honour RFC 7517 §4.4 do, as joserfc does, so the check is made here.
        key_alg = key.get("alg")
        if key_alg is not None and key_alg != alg:
            return f"jwcrypto: key {kid!r} is for {key_alg}, the token is {alg}"
        sig.verify(key, alg)
    except (JWException, ValueError) as e:
        return f"jwcrypto: {type(e).__name__}: {e}"
    return None


def main() -> int:
    jwks_file, alg = sys.argv[1:3]
    token = sys.stdin.read().strip()
    with open(jwks_file, encoding="utf-8") as f:
        jwks = json.load(f)
    errors = [e for e in (with_joserfc(jwks, token, alg), with_jwcrypto(jwks, token, alg)) if e]
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
