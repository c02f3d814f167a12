"""Independent verification of a pkjwt client assertion with PyJWT + pyca/cryptography.

Usage: pyjwt_verify.py JWK_FILE ALG CLIENT_ID AUDIENCE  (the JWT on stdin)
Prints the verified claims as JSON; exits non-zero with the reason on stderr otherwise.
"""

import json
import sys

import jwt


def main() -> int:
    jwk_file, alg, client_id, audience = sys.argv[1:5]
    token = sys.stdin.read().strip()
    with open(jwk_file, encoding="utf-8") as f:
        key = jwt.PyJWK(json.load(f), algorithm=alg).key
    header = jwt.get_unverified_header(token)
    if header.get("alg") != alg:
        print(f"header alg {header.get('alg')!r} != {alg!r}", file=sys.stderr)
        return 1
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=[alg],
            audience=audience,
            issuer=client_id,
            options={"require": ["exp", "iat", "iss", "sub", "aud", "jti"]},
        )
    except jwt.PyJWTError as e:
        print(f"PyJWT refused the token: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if claims["sub"] != client_id:
        print(f"sub {claims['sub']!r} != client_id", file=sys.stderr)
        return 1
    print(json.dumps(claims))
    return 0


if __name__ == "__main__":
    sys.exit(main())
