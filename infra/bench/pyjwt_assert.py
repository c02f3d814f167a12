"""ES256 client assertions with PyJWT, key loaded once: the Python peer of the Rust bench.

Usage: pyjwt_assert.py KEY.pem SECONDS
Prints `rate N` (assertions per CPU-second of the process over SECONDS, after a warm-up) for infra/bench/peers.sh.
Each assertion carries what pkjwt's does: header alg/kid/typ; claims iss, sub, aud, iat, nbf,
exp and a fresh 128-bit jti from the operating system.
"""

import base64
import hashlib
import json
import os
import sys
import time

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key

CLIENT_ID = "bench-client"
AUDIENCE = "https://as.example.com"
TYP = "client-authentication+jwt"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(key) -> str:
    """RFC 7638 thumbprint of the public key, so the header has pkjwt's kid length."""
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    canonical = json.dumps(
        {"crv": jwk["crv"], "kty": "EC", "x": jwk["x"], "y": jwk["y"]},
        separators=(",", ":"),
    )
    return b64url(hashlib.sha256(canonical.encode()).digest())


def main() -> None:
    with open(sys.argv[1], "rb") as f:
        key = load_pem_private_key(f.read(), password=None)
    seconds = float(sys.argv[2])
    headers = {"kid": thumbprint(key), "typ": TYP}

    def one() -> str:
        iat = int(time.time())
        claims = {
            "iss": CLIENT_ID,
            "sub": CLIENT_ID,
            "aud": AUDIENCE,
            "iat": iat,
            "nbf": iat,
            "exp": iat + 60,
            "jti": b64url(os.urandom(16)),
        }
        return jwt.encode(claims, key, algorithm="ES256", headers=headers)

    # The JWT must verify with the key's public half (a peer that did less would look fast).
    token = one()
    jwt.decode(token, key.public_key(), algorithms=["ES256"], audience=AUDIENCE)
    for _ in range(50):
        one()
    # Runs for SECONDS of wall time, counts per CPU-second of the process (other processes on a
    # shared machine then do not lower the rate), as the Rust bench does.
    n = 0
    start = time.perf_counter()
    cpu_start = time.process_time()
    while time.perf_counter() - start < seconds:
        for _ in range(16):
            one()
        n += 16
    print(f"rate {n / (time.process_time() - cpu_start):.0f}")


if __name__ == "__main__":
    main()
