"""pkjwt's Google Cloud KMS test double.

A small HTTP server that answers the parts of the Cloud KMS REST API (v1) and of Google's OAuth
2.0 token endpoints that pkjwt's ``pkjwt-gcp-kms`` backend calls, as the API reference describes
them. docs/gcp-kms.md ("The test double") lists which behaviours come from the reference and
which are assumed. It never contacts anything; it listens on 127.0.0.1 only.

Cloud KMS (``/v1/...``, every call needs ``Authorization: Bearer`` with a token this double
issued, else 401 ``UNAUTHENTICATED``):

* ``POST /v1/{parent}/keyRings?keyRingId=R`` creates a key ring;
* ``POST /v1/{keyRing}/cryptoKeys?cryptoKeyId=K`` creates a key and its version 1
  (``PENDING_GENERATION`` for ``HSM`` keys for ``--pending-ms``, then ``ENABLED``);
* ``GET /v1/{version}``, ``PATCH /v1/{version}?updateMask=state``, ``POST /v1/{version}:destroy``;
* ``GET /v1/{version}/publicKey`` answers ``pem``, ``algorithm``, ``pemCrc32c``, ``name``,
  ``protectionLevel``;
* ``POST /v1/{version}:asymmetricSign`` with ``digest`` (+ ``digestCrc32c``) or, for
  ``EC_SIGN_ED25519``, ``data`` (+ ``dataCrc32c``); answers ``signature``, ``signatureCrc32c``,
  ``verifiedDigestCrc32c``, ``verifiedDataCrc32c``, ``name``, ``protectionLevel``. A wrong
  checksum is ``INVALID_ARGUMENT``; a digest of another hash than the version's algorithm, or of
  the wrong length, is ``INVALID_ARGUMENT``; a version that is not ``ENABLED`` is
  ``FAILED_PRECONDITION``; a key that is not ``ASYMMETRIC_SIGN`` is ``FAILED_PRECONDITION``.
  ECDSA signatures are DER; RSA-PSS uses a salt as long as the digest.

Errors are ``{"error": {"code": N, "message": "...", "status": "NOT_FOUND"}}``. IAM is checked
before existence (a denied caller cannot learn whether a key exists), with the permission named
in the message as Cloud KMS does.

Tokens:

* ``POST /token``: the refresh-token grant of user credentials it issued, and the JWT-bearer
  grant (RFC 7523) of a service account key this double issued;
  the assertion's signature, ``iss``, ``aud`` (this URL), ``scope`` and times are checked (its
  calls are counted, and faults matched, under the name of the assertion's ``iss``);
* ``POST /sts/v1/token``: the token exchange (RFC 8693) of workload identity federation, with a
  subject token this double issued;
* ``POST /iam/v1/projects/-/serviceAccounts/EMAIL:generateAccessToken``: impersonation.

Control API for tests, under ``/_pkjwt/`` (no auth):

* ``POST /_pkjwt/service-account`` ``{"email"?}`` -> a service account key file (JSON) whose
  ``token_uri`` is this double;
* ``POST /_pkjwt/authorized-user`` -> a gcloud user credentials file (refresh-token grant at
  this double's ``/token``);
* ``POST /_pkjwt/external-account`` ``{"subject_token_file", "impersonate"?}`` -> ``{"config",
  "subject_token"}``;
* ``POST /_pkjwt/keys`` ``{"name": version name, "algorithm", "purpose"?, "protectionLevel"?,
  "state"?}`` creates key ring, key and version directly;
* ``POST /_pkjwt/token`` ``{"principal"?}`` -> an access token without a grant (for a bare
  REST client in benchmarks); ``POST /_pkjwt/key-ring`` ``{"name"}``; ``POST /_pkjwt/state``
  ``{"name", "state"}`` sets a version's state; ``GET /_pkjwt/version?name=N`` reads one;
* ``POST /_pkjwt/deny`` ``{"permission", "resource"}`` (resource prefix; ``principal``
  optional); ``POST /_pkjwt/faults`` ``{"rules": [...]}``: a rule matches ``op`` (``token``,
  ``getPublicKey``, ``asymmetricSign``, ``createCryptoKey``, ``getCryptoKeyVersion``, ...) and
  optionally ``name``; ``times`` (-1 = for ever); it may ``delay_ms``, answer ``error``
  (``{"code", "status", "message"}``), or ``corrupt`` one field of the real answer
  (``signature``, ``signatureCrc32c``, ``pemCrc32c``, ``pem``, ``verifiedDigestCrc32c``,
  ``verifiedDataCrc32c``, ``name``) or ``drop`` fields;
* ``GET /_pkjwt/calls?name=N`` -> ``{"asymmetricSign": n, ...}``; ``POST /_pkjwt/reset`` clears
  rules, denials and counters (keys stay).

Run: ``python gcp_kms_double.py [--port 0]``; it prints ``READY <port>`` once listening and
exits when its stdin closes (unless ``--no-stdin-watch``).
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit, unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric import utils as asym_utils

SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli, RFC 3720), written independently of the Rust one."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


# Signing algorithms of the API reference (CryptoKeyVersionAlgorithm): kind, hash, key size.
SIGN_ALGS = {
    "EC_SIGN_P256_SHA256": ("ec", "sha256", ec.SECP256R1),
    "EC_SIGN_P384_SHA384": ("ec", "sha384", ec.SECP384R1),
    "EC_SIGN_SECP256K1_SHA256": ("ec", "sha256", ec.SECP256K1),
    "EC_SIGN_ED25519": ("ed25519", None, None),
    "RSA_SIGN_PSS_2048_SHA256": ("pss", "sha256", 2048),
    "RSA_SIGN_PSS_3072_SHA256": ("pss", "sha256", 3072),
    "RSA_SIGN_PSS_4096_SHA256": ("pss", "sha256", 4096),
    "RSA_SIGN_PSS_4096_SHA512": ("pss", "sha512", 4096),
    "RSA_SIGN_PKCS1_2048_SHA256": ("pkcs1", "sha256", 2048),
    "RSA_SIGN_PKCS1_3072_SHA256": ("pkcs1", "sha256", 3072),
    "RSA_SIGN_PKCS1_4096_SHA256": ("pkcs1", "sha256", 4096),
    "RSA_SIGN_PKCS1_4096_SHA512": ("pkcs1", "sha512", 4096),
}
DECRYPT_ALGS = {"RSA_DECRYPT_OAEP_2048_SHA256": 2048}
HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
HSM_ONLY = {"EC_SIGN_SECP256K1_SHA256"}


class ApiError(Exception):
    CODES = {
        "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "UNAUTHENTICATED": 401,
        "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ALREADY_EXISTS": 409,
        "RESOURCE_EXHAUSTED": 429, "INTERNAL": 500, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
    }

    def __init__(self, status: str, message: str, code: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or self.CODES.get(status, 400)

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def new_private_key(algorithm: str):
    if algorithm in DECRYPT_ALGS:
        return rsa.generate_private_key(65537, DECRYPT_ALGS[algorithm])
    kind, _, size = SIGN_ALGS[algorithm]
    if kind == "ec":
        return ec.generate_private_key(size())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(65537, size)


class State:
    def __init__(self, pending_ms: int) -> None:
        self.lock = threading.Lock()
        self.pending_ms = pending_ms
        self.port = 0
        self.key_rings: set[str] = set()
        self.keys: dict[str, dict] = {}
        self.versions: dict[str, dict] = {}
        self.accounts: dict[str, object] = {}  # email -> public key
        self.subject_tokens: dict[str, str] = {}  # subject token -> email
        self.tokens: dict[str, str] = {}  # access token -> principal
        self.users: dict[str, tuple[str, str]] = {}  # client id -> (secret, refresh token)
        self.reset()

    def reset(self) -> None:
        self.rules: list[dict] = []
        self.denials: list[dict] = []
        self.calls: dict[tuple[str, str], int] = {}

    # --- faults and counters ---
    def record(self, op: str, name: str) -> dict | None:
        with self.lock:
            self.calls[(op, name)] = self.calls.get((op, name), 0) + 1
            for rule in self.rules:
                if rule.get("op") != op or rule.get("name", name) != name:
                    continue
                if rule.get("times", 1) == 0:
                    continue
                if rule.get("times", 1) > 0:
                    rule["times"] = rule.get("times", 1) - 1
                return rule
        return None

    def counts(self, name: str | None) -> dict[str, int]:
        out: dict[str, int] = {}
        with self.lock:
            for (op, n), c in self.calls.items():
                if name is None or n == name:
                    out[op] = out.get(op, 0) + c
        return out

    # --- IAM ---
    def check_permission(self, principal: str, permission: str, resource: str) -> None:
        for d in self.denials:
            if d["permission"] == permission and resource.startswith(d.get("resource", "")) and \
                    d.get("principal", principal) == principal:
                raise ApiError(
                    "PERMISSION_DENIED",
                    f"Permission '{permission}' denied on resource '{resource}' (or it may not exist).",
                )

    # --- keys ---
    def version(self, name: str) -> dict:
        v = self.versions.get(name)
        if v is None:
            raise ApiError("NOT_FOUND", f"{name} not found.")
        if v["state"] == "PENDING_GENERATION" and time.monotonic() >= v["ready_at"]:
            v["state"] = "ENABLED"
            v["generateTime"] = now_rfc3339()
        return v

    def create_key(self, key_ring: str, key_id: str, body: dict) -> dict:
        if key_ring not in self.key_rings:
            raise ApiError("NOT_FOUND", f"{key_ring} not found.")
        name = f"{key_ring}/cryptoKeys/{key_id}"
        if name in self.keys:
            raise ApiError("ALREADY_EXISTS", f"{name} already exists.")
        purpose = body.get("purpose")
        tmpl = body.get("versionTemplate") or {}
        alg = tmpl.get("algorithm")
        level = tmpl.get("protectionLevel", "SOFTWARE")
        if purpose == "ASYMMETRIC_SIGN":
            if alg not in SIGN_ALGS:
                raise ApiError("INVALID_ARGUMENT",
                               f"Algorithm {alg} is not compatible with purpose ASYMMETRIC_SIGN.")
        elif purpose == "ASYMMETRIC_DECRYPT":
            if alg not in DECRYPT_ALGS:
                raise ApiError("INVALID_ARGUMENT",
                               f"Algorithm {alg} is not compatible with purpose ASYMMETRIC_DECRYPT.")
        elif purpose == "ENCRYPT_DECRYPT":
            alg = "GOOGLE_SYMMETRIC_ENCRYPTION"
        else:
            raise ApiError("INVALID_ARGUMENT", f"Invalid value for purpose: {purpose!r}.")
        if level not in ("SOFTWARE", "HSM"):
            raise ApiError("INVALID_ARGUMENT", f"Unsupported protection level {level}.")
        if alg in HSM_ONLY and level != "HSM":
            raise ApiError("INVALID_ARGUMENT", f"Algorithm {alg} requires protection level HSM.")
        key = {"name": name, "purpose": purpose, "createTime": now_rfc3339(),
               "versionTemplate": {"algorithm": alg, "protectionLevel": level},
               "labels": body.get("labels") or {}, "next": 2}
        self.keys[name] = key
        vname = f"{name}/cryptoKeyVersions/1"
        pending = level == "HSM" and self.pending_ms > 0
        self.versions[vname] = {
            "name": vname, "algorithm": alg, "protectionLevel": level, "purpose": purpose,
            "state": "PENDING_GENERATION" if pending else "ENABLED",
            "ready_at": time.monotonic() + self.pending_ms / 1000.0,
            "createTime": now_rfc3339(),
            "key": None if alg == "GOOGLE_SYMMETRIC_ENCRYPTION" else new_private_key(alg),
        }
        if purpose == "ENCRYPT_DECRYPT":
            key["primary"] = self.version_json(self.versions[vname])
        return key

    @staticmethod
    def version_json(v: dict) -> dict:
        out = {k: v[k] for k in ("name", "state", "protectionLevel", "algorithm", "createTime")}
        if "generateTime" in v:
            out["generateTime"] = v["generateTime"]
        return out


def public_json(key: dict) -> dict:
    return {k: v for k, v in key.items() if k != "next"}


class Handler(BaseHTTPRequestHandler):
    server_version = "gcp-kms-double"
    protocol_version = "HTTP/1.1"
    state: State

    def log_message(self, fmt, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        # Headers and body leave in separate writes; without TCP_NODELAY, Nagle's algorithm and
        # the client's delayed ACK hold each answer on a kept-alive connection for ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # --- plumbing ---
    def _send(self, code: int, obj) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        # Read once, up front in _dispatch: an answer sent before the body was read (an injected
        # fault) would leave it in a kept-alive connection, to be parsed as the next request.
        return self._raw_body

    def _json_body(self) -> dict:
        raw = self._body()
        if not raw:
            return {}
        try:
            v = json.loads(raw)
        except ValueError:
            raise ApiError("INVALID_ARGUMENT", "Invalid JSON payload received.")
        if not isinstance(v, dict):
            raise ApiError("INVALID_ARGUMENT", "Invalid JSON payload received.")
        return v

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        self._raw_body = self.rfile.read(n) if n else b""
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            if path.startswith("/_pkjwt/"):
                return self._control(method, path, query)
            if path == "/token" and method == "POST":
                form = self._form()
                # Counted and faulted per service account (the assertion's iss), so that tests
                # running in parallel with their own accounts do not see each other's grants.
                return self._with_faults("token", self._assertion_iss(form), lambda: self._token(form))
            if path == "/sts/v1/token" and method == "POST":
                return self._with_faults("sts", "sts", lambda: self._sts())
            if path.startswith("/iam/v1/projects/-/serviceAccounts/") and path.endswith(":generateAccessToken"):
                email = path[len("/iam/v1/projects/-/serviceAccounts/"):-len(":generateAccessToken")]
                return self._with_faults("generateAccessToken", email, lambda: self._impersonate(email))
            if path.startswith("/v1/"):
                return self._kms(method, path[len("/v1/"):], query)
            raise ApiError("NOT_FOUND", f"The requested URL {path} was not found on this server.")
        except ApiError as e:
            self._send(e.code, e.body())

    def _with_faults(self, op: str, name: str, fn) -> None:
        rule = self.state.record(op, name)
        if rule and rule.get("delay_ms"):
            time.sleep(rule["delay_ms"] / 1000.0)
        if rule and rule.get("error"):
            err = rule["error"]
            if op in ("token", "sts"):
                return self._send(err.get("code", 400), {"error": err.get("status", "invalid_grant"),
                                                         "error_description": err.get("message", "")})
            raise ApiError(err.get("status", "INTERNAL"), err.get("message", "injected fault"),
                           err.get("code"))
        code, out = fn()
        if rule:
            for f in rule.get("drop", []):
                out.pop(f, None)
            c = rule.get("corrupt")
            if c in ("signature",):
                sig = bytearray(base64.b64decode(out["signature"]))
                sig[-1] ^= 1
                out["signature"] = base64.b64encode(bytes(sig)).decode()
            elif c in ("signatureCrc32c", "pemCrc32c"):
                out[c] = str((int(out[c]) + 1) & 0xFFFFFFFF)
            elif c == "pem":
                out["pem"] = out["pem"].replace("\n-----END", "\n\n-----END")
            elif c in ("verifiedDigestCrc32c", "verifiedDataCrc32c"):
                out[c] = False
            elif c == "name":
                out["name"] = out["name"].rsplit("/", 1)[0] + "/999"
        self._send(code, out)

    # --- OAuth ---
    def _form(self) -> dict:
        return {k: v[-1] for k, v in parse_qs(self._body().decode()).items()}

    def _issue(self, principal: str) -> dict:
        token = "ya29.double-" + secrets.token_urlsafe(24)
        with self.state.lock:
            self.state.tokens[token] = principal
        return {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def _grant_error(self, error: str, description: str):
        return 400, {"error": error, "error_description": description}

    @staticmethod
    def _assertion_iss(form: dict) -> str:
        if form.get("grant_type") == "refresh_token":
            return form.get("client_id", "-")
        try:
            return str(json.loads(b64url_decode(form.get("assertion", "").split(".")[1])).get("iss", "-"))
        except (ValueError, IndexError, AttributeError):
            return "-"

    def _token(self, form: dict):
        if form.get("grant_type") == "refresh_token":
            # gcloud user credentials (authorized_user): client id, secret and refresh token.
            user = self.state.users.get(form.get("client_id", ""))
            if user is None or not secrets.compare_digest(user[0], form.get("client_secret", "")):
                return 401, {"error": "invalid_client", "error_description": "The OAuth client was not found."}
            if not secrets.compare_digest(user[1], form.get("refresh_token", "")):
                return self._grant_error("invalid_grant", "Token has been expired or revoked.")
            return 200, self._issue("user:" + form["client_id"])
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._grant_error("unsupported_grant_type", "Invalid grant_type.")
        parts = form.get("assertion", "").split(".")
        if len(parts) != 3:
            return self._grant_error("invalid_grant", "Invalid JWT: not a JWS.")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
        except ValueError:
            return self._grant_error("invalid_grant", "Invalid JWT: malformed.")
        if header.get("alg") != "RS256":
            return self._grant_error("invalid_grant", "Invalid JWT: alg must be RS256.")
        pub = self.state.accounts.get(claims.get("iss"))
        if pub is None:
            return self._grant_error("invalid_grant", "Invalid JWT Signature.")
        try:
            pub.verify(sig, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return self._grant_error("invalid_grant", "Invalid JWT Signature.")
        now = time.time()
        if claims.get("aud") != f"http://127.0.0.1:{self.state.port}/token":
            return self._grant_error("invalid_grant", "Invalid JWT: aud is not this token endpoint.")
        if not (claims.get("iat", 0) - 60 <= now < claims.get("exp", 0)) or \
                claims.get("exp", 0) - claims.get("iat", 0) > 3600:
            return self._grant_error("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.")
        if SCOPE not in str(claims.get("scope", "")).split():
            return self._grant_error("invalid_scope", "The cloud-platform scope is required.")
        return 200, self._issue(claims["iss"])

    def _sts(self):
        form = self._form()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange":
            return self._grant_error("invalid_request", "Invalid grant_type.")
        email = self.state.subject_tokens.get(form.get("subject_token", ""))
        if email is None:
            return self._grant_error("invalid_grant", "The subject token is invalid.")
        if not form.get("audience", "").startswith("//iam.googleapis.com/"):
            return self._grant_error("invalid_request", "Invalid audience.")
        if form.get("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token":
            return self._grant_error("invalid_request", "Invalid requested_token_type.")
        return 200, self._issue("federated:" + email)

    def _impersonate(self, email: str):
        principal = self._principal()
        if not principal.startswith("federated:") or principal[len("federated:"):] != email:
            raise ApiError("PERMISSION_DENIED",
                           f"Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).")
        body = self._json_body()
        if SCOPE not in body.get("scope", []):
            raise ApiError("INVALID_ARGUMENT", "scope must include cloud-platform")
        token = self._issue(email)["access_token"]
        return 200, {"accessToken": token, "expireTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))}

    def _principal(self) -> str:
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        principal = self.state.tokens.get(token)
        if principal is None:
            raise ApiError("UNAUTHENTICATED",
                           "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
        return principal

    # --- Cloud KMS ---
    def _kms(self, method: str, rest: str, query: dict) -> None:
        st = self.state
        if method == "POST" and rest.endswith("/keyRings"):
            parent = rest[: -len("/keyRings")]
            name = f"{parent}/keyRings/{query.get('keyRingId', '')}"
            return self._op("createKeyRing", name, "cloudkms.keyRings.create", lambda: self._create_ring(name))
        if method == "POST" and rest.endswith("/cryptoKeys"):
            ring = rest[: -len("/cryptoKeys")]
            key_id = query.get("cryptoKeyId", "")
            name = f"{ring}/cryptoKeys/{key_id}"
            return self._op("createCryptoKey", name, "cloudkms.cryptoKeys.create",
                            lambda: (200, public_json(st.create_key(ring, key_id, self._json_body()))))
        if method == "GET" and rest.endswith("/publicKey"):
            name = rest[: -len("/publicKey")]
            return self._op("getPublicKey", name, "cloudkms.cryptoKeyVersions.viewPublicKey",
                            lambda: self._public_key(name))
        if method == "POST" and rest.endswith(":asymmetricSign"):
            name = rest[: -len(":asymmetricSign")]
            return self._op("asymmetricSign", name, "cloudkms.cryptoKeyVersions.useToSign",
                            lambda: self._sign(name, self._json_body()))
        if method == "POST" and rest.endswith(":destroy"):
            name = rest[: -len(":destroy")]
            return self._op("destroy", name, "cloudkms.cryptoKeyVersions.destroy",
                            lambda: self._set_state(name, "DESTROY_SCHEDULED"))
        if method == "PATCH" and "/cryptoKeyVersions/" in rest:
            body = self._json_body()
            if query.get("updateMask") != "state" or body.get("state") not in ("ENABLED", "DISABLED"):
                raise ApiError("INVALID_ARGUMENT", "updateMask must be state, to ENABLED or DISABLED.")
            return self._op("updateCryptoKeyVersion", rest, "cloudkms.cryptoKeyVersions.update",
                            lambda: self._set_state(rest, body["state"]))
        if method == "GET" and "/cryptoKeyVersions/" in rest:
            return self._op("getCryptoKeyVersion", rest, "cloudkms.cryptoKeyVersions.get",
                            lambda: (200, st.version_json(st.version(rest))))
        raise ApiError("NOT_FOUND", f"The requested URL /v1/{rest} was not found on this server.")

    def _op(self, op: str, name: str, permission: str, fn) -> None:
        principal = self._principal()

        def checked():
            self.state.check_permission(principal, permission, name)
            return fn()

        self._with_faults(op, name, checked)

    def _create_ring(self, name: str):
        with self.state.lock:
            if name in self.state.key_rings:
                raise ApiError("ALREADY_EXISTS", f"{name} already exists.")
            self.state.key_rings.add(name)
        return 200, {"name": name, "createTime": now_rfc3339()}

    def _set_state(self, name: str, new: str):
        v = self.state.version(name)
        if v["state"] in ("DESTROYED", "DESTROY_SCHEDULED") and new != "DESTROY_SCHEDULED":
            raise ApiError("FAILED_PRECONDITION", f"{name} is {v['state']}.")
        v["state"] = new
        return 200, self.state.version_json(v)

    def _usable(self, name: str) -> dict:
        v = self.state.version(name)
        if v["state"] != "ENABLED":
            raise ApiError("FAILED_PRECONDITION",
                           f"{name} is not enabled, current state is: {v['state']}.")
        return v

    def _public_key(self, name: str):
        v = self._usable(name)
        if v["purpose"] not in ("ASYMMETRIC_SIGN", "ASYMMETRIC_DECRYPT"):
            raise ApiError("FAILED_PRECONDITION",
                           f"{name} has purpose {v['purpose']}; a public key exists for asymmetric keys only.")
        pem = v["key"].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        return 200, {"pem": pem, "algorithm": v["algorithm"], "pemCrc32c": str(crc32c(pem.encode())),
                     "name": name, "protectionLevel": v["protectionLevel"]}

    def _sign(self, name: str, body: dict):
        v = self._usable(name)
        if v["purpose"] != "ASYMMETRIC_SIGN":
            raise ApiError("FAILED_PRECONDITION",
                           f"{name} has purpose {v['purpose']}, not ASYMMETRIC_SIGN.")
        kind, hash_name, _ = SIGN_ALGS[v["algorithm"]]
        out = {"name": name, "protectionLevel": v["protectionLevel"],
               "verifiedDigestCrc32c": False, "verifiedDataCrc32c": False}
        if kind == "ed25519":
            if "digest" in body or "data" not in body:
                raise ApiError("INVALID_ARGUMENT",
                               f"{v['algorithm']} signs data, not a digest: set data.")
            data = base64.b64decode(body["data"])
            if "dataCrc32c" in body:
                if int(body["dataCrc32c"]) != crc32c(data):
                    raise ApiError("INVALID_ARGUMENT",
                                   "The checksum in field data_crc32c did not match the data in field data.")
                out["verifiedDataCrc32c"] = True
            sig = v["key"].sign(data)
        else:
            digest_obj = body.get("digest")
            if "data" in body or not isinstance(digest_obj, dict) or len(digest_obj) != 1:
                raise ApiError("INVALID_ARGUMENT", "Exactly one digest (sha256, sha384 or sha512) is required.")
            (field, value), = digest_obj.items()
            if field != hash_name:
                raise ApiError("INVALID_ARGUMENT",
                               f"The digest type {field} does not match the algorithm {v['algorithm']}, which expects {hash_name}.")
            digest = base64.b64decode(value)
            h = HASHES[hash_name]()
            if len(digest) != h.digest_size:
                raise ApiError("INVALID_ARGUMENT",
                               f"Digest of {len(digest)} bytes; {hash_name} digests are {h.digest_size} bytes.")
            if "digestCrc32c" in body:
                if int(body["digestCrc32c"]) != crc32c(digest):
                    raise ApiError("INVALID_ARGUMENT",
                                   "The checksum in field digest_crc32c did not match the data in field digest.")
                out["verifiedDigestCrc32c"] = True
            pre = asym_utils.Prehashed(h)
            if kind == "ec":
                sig = v["key"].sign(digest, ec.ECDSA(pre))
            elif kind == "pss":
                sig = v["key"].sign(digest, padding.PSS(padding.MGF1(HASHES[hash_name]()), h.digest_size), pre)
            else:
                sig = v["key"].sign(digest, padding.PKCS1v15(), pre)
        out["signature"] = base64.b64encode(sig).decode()
        out["signatureCrc32c"] = str(crc32c(sig))
        return 200, out

    # --- control ---
    def _control(self, method: str, path: str, query: dict) -> None:
        st = self.state
        if path == "/_pkjwt/service-account" and method == "POST":
            body = self._json_body()
            email = body.get("email") or f"sa-{secrets.token_hex(4)}@pkjwt-test.iam.gserviceaccount.com"
            key = rsa.generate_private_key(65537, 2048)
            st.accounts[email] = key.public_key()
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
            return self._send(200, {
                "type": "service_account", "project_id": "pkjwt-test",
                "private_key_id": secrets.token_hex(20), "private_key": pem,
                "client_email": email, "client_id": str(secrets.randbits(60)),
                "auth_uri": f"http://127.0.0.1:{st.port}/auth",
                "token_uri": f"http://127.0.0.1:{st.port}/token",
            })
        if path == "/_pkjwt/authorized-user" and method == "POST":
            client_id = f"{secrets.token_hex(6)}.apps.googleusercontent.com"
            secret, refresh = secrets.token_urlsafe(18), "1//" + secrets.token_urlsafe(30)
            st.users[client_id] = (secret, refresh)
            return self._send(200, {
                "type": "authorized_user", "client_id": client_id, "client_secret": secret,
                "refresh_token": refresh, "token_uri": f"http://127.0.0.1:{st.port}/token",
            })
        if path == "/_pkjwt/external-account" and method == "POST":
            body = self._json_body()
            email = body.get("email") or f"wif-{secrets.token_hex(4)}@pkjwt-test.iam.gserviceaccount.com"
            subject = "subject-" + secrets.token_urlsafe(16)
            st.subject_tokens[subject] = email
            config = {
                "type": "external_account",
                "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q",
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "token_url": f"http://127.0.0.1:{st.port}/sts/v1/token",
                "credential_source": {"file": body["subject_token_file"]},
            }
            if body.get("impersonate", True):
                config["service_account_impersonation_url"] = (
                    f"http://127.0.0.1:{st.port}/iam/v1/projects/-/serviceAccounts/{email}:generateAccessToken")
            return self._send(200, {"config": config, "subject_token": subject, "email": email})
        if path == "/_pkjwt/keys" and method == "POST":
            body = self._json_body()
            name = body["name"]
            ring, rest = name.split("/cryptoKeys/", 1)
            key_id = rest.split("/", 1)[0]
            with st.lock:
                st.key_rings.add(ring)
                key = st.create_key(ring, key_id, {
                    "purpose": body.get("purpose", "ASYMMETRIC_SIGN"),
                    "versionTemplate": {"algorithm": body["algorithm"],
                                        "protectionLevel": body.get("protectionLevel", "SOFTWARE")}})
                vname = key["name"] + "/cryptoKeyVersions/1"
                # Keys made here are ready at once unless a state is asked for.
                st.versions[vname]["state"] = body.get("state", "ENABLED")
            return self._send(200, {"name": vname})
        if path == "/_pkjwt/token" and method == "POST":
            # An access token without a grant, for a bare REST client in benchmarks.
            principal = self._json_body().get("principal", "bench@pkjwt-test.iam.gserviceaccount.com")
            return self._send(200, self._issue(principal))
        if path == "/_pkjwt/key-ring" and method == "POST":
            st.key_rings.add(self._json_body()["name"])
            return self._send(200, {})
        if path == "/_pkjwt/state" and method == "POST":
            body = self._json_body()
            st.version(body["name"])["state"] = body["state"]
            return self._send(200, {})
        if path == "/_pkjwt/deny" and method == "POST":
            st.denials.append(self._json_body())
            return self._send(200, {})
        if path == "/_pkjwt/faults" and method == "POST":
            with st.lock:
                st.rules.extend(self._json_body().get("rules", []))
            return self._send(200, {})
        if path == "/_pkjwt/version" and method == "GET":
            return self._send(200, st.version_json(st.version(query.get("name", ""))))
        if path == "/_pkjwt/calls" and method == "GET":
            return self._send(200, st.counts(query.get("name")))
        if path == "/_pkjwt/reset" and method == "POST":
            with st.lock:
                st.reset()
            return self._send(200, {})
        return self._send(404, {"error": f"no control endpoint {method} {path}"})


def serve(port: int = 0, pending_ms: int = 200) -> tuple[ThreadingHTTPServer, State]:
    state = State(pending_ms)
    handler = type("BoundHandler", (Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    return server, state


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--pending-ms", type=int, default=200,
                   help="how long a new HSM key version stays PENDING_GENERATION")
    p.add_argument("--no-stdin-watch", action="store_true")
    args = p.parse_args(argv)
    server, state = serve(args.port, args.pending_ms)
    if not args.no_stdin_watch:
        def watch():
            sys.stdin.read()
            server.shutdown()
        threading.Thread(target=watch, daemon=True).start()
    print(f"READY {state.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
