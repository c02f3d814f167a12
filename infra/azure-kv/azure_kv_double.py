"""pkjwt's Azure Key Vault test double: the vault REST calls pkjwt makes, and the Microsoft Entra
ID token endpoint its credential calls first, over HTTPS on 127.0.0.1.

No Azure emulator for Key Vault exists that pkjwt could install from a package registry, so this
is a small server written from the Key Vault REST API reference (api-version 7.5) and the
Microsoft identity platform's client-credentials reference. ``docs/azure-kv.md`` lists which
behaviours come from the references and which are assumed.

Served (``BASE`` = ``https://127.0.0.1:PORT``):

* ``POST /{tenant}/oauth2/v2.0/token`` — client credentials (``client_id``, ``client_secret``,
  ``grant_type=client_credentials``, ``scope=https://vault.azure.net/.default``), or instead of
  the secret a federated token (``client_assertion_type`` jwt-bearer, ``client_assertion``: the
  fixed test token a workload identity reads from its token file); answers
  ``{"token_type": "Bearer", "expires_in": …, "access_token": …}`` or the OAuth error body.
* the vault, every call with ``?api-version=``: an unauthenticated request gets 401 with
  ``WWW-Authenticate: Bearer authorization="BASE/{tenant}", resource="https://vault.azure.net"``;
  ``GET /keys/{name}[/{version}]``, ``POST /keys/{name}/create``,
  ``POST /keys/{name}/{version}/sign``, ``GET /certificates/{name}[/{version}]``; errors as
  ``{"error": {"code": …, "message": …, "innererror": {"code": …}}}``.

Test controls under ``/_admin/`` (no authentication; loopback only):

* ``POST /_admin/certificates/{name}`` ``{"kty": "EC"|"RSA", "crv", "key_size", "subject",
  "mismatch": false}`` — a new key version and a self-signed certificate of the same name and
  version (as Key Vault's Create Certificate makes them); ``mismatch`` signs a certificate over
  another key, for the mismatch test.
* ``POST /_admin/create/{name}`` (a Create Key body) — a new key version without a token.
* ``POST /_admin/keys/{name}`` ``{"version": V?, "enabled": bool, "key_ops": [...]}`` — change a
  version's attributes.
* ``POST /_admin/faults`` ``{"rules": [...]}`` — a rule matches ``op`` (``token``, ``get_key``,
  ``create_key``, ``sign``, ``get_certificate``) and optionally ``name``; ``times`` (default 1,
  ``-1`` for ever); it answers ``status`` with ``code``/``inner``/``message`` and optional
  ``retry_after`` / ``www_authenticate`` headers (``{base}`` becomes the double's URL), or
  delays (``delay_ms``), or ``mutate``s the real answer
  (``"truncate_signature"``, ``"kid"``).
* ``GET /_admin/calls[?name=N]`` — ``{"sign": n, "get_key": m, …, "unauthenticated": u,
  "unauthenticated_with_body": b}``; ``POST /_admin/reset`` clears rules and counters.

Run: ``python azure_kv_double.py --ca-dir DIR [--port 0]``. It writes ``DIR/ca.pem`` (the test CA
that signed its server certificate), prints ``READY <port>`` once listening, and exits when its
stdin closes (so a test harness that dies never leaves it behind).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import ipaddress
import json
import os
import ssl
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric import utils as asym_utils
from cryptography.x509.oid import NameOID

TENANT = "pkjwt-test-tenant"
CLIENT_ID = "pkjwt-test-client"
CLIENT_SECRET = "pkjwt-test-secret"
FEDERATED_TOKEN = "pkjwt-test-federated-token"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
VAULT_RESOURCE = "https://vault.azure.net"
TOKEN_LIFETIME = 3599

CURVES = {
    "P-256": (ec.SECP256R1, 32),
    "P-384": (ec.SECP384R1, 48),
    "P-521": (ec.SECP521R1, 66),
    "P-256K": (ec.SECP256K1, 32),
}
EC_ALG = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512", "P-256K": "ES256K"}
HASHES = {"256": (hashes.SHA256, 32), "384": (hashes.SHA384, 48), "512": (hashes.SHA512, 64)}
RSA_ALGS = {f"{p}{n}" for p in ("PS", "RS") for n in ("256", "384", "512")}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def int_bytes(n: int, length: int | None = None) -> bytes:
    length = length or max(1, (n.bit_length() + 7) // 8)
    return n.to_bytes(length, "big")


class KvError(Exception):
    """An error answer: HTTP status and Key Vault error body."""

    def __init__(self, status, code, message, inner=None, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner = inner
        self.headers = headers or {}

    def body(self):
        err = {"code": self.code, "message": self.message}
        if self.inner:
            err["innererror"] = {"code": self.inner}
        return {"error": err}


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.keys: dict[str, list[dict]] = {}  # name -> versions, oldest first
        self.certs: dict[str, dict[str, bytes]] = {}  # name -> version -> DER
        self.tokens: dict[str, str] = {}  # access token -> scope
        self.calls: Counter = Counter()
        self.rules: list[dict] = []
        self.base = ""

    # --- keys ---------------------------------------------------------------------------------
    def new_version(self, name, spec, private=None):
        """Adds a version; call without the lock held (key generation takes seconds for RSA)."""
        kty = spec.get("kty", "EC")
        if kty in ("EC", "EC-HSM"):
            crv = spec.get("crv", "P-256")
            if crv not in CURVES:
                raise KvError(400, "BadParameter", f"Invalid curve name: {crv}.")
            private = private or ec.generate_private_key(CURVES[crv][0]())
            size = None
        elif kty in ("RSA", "RSA-HSM"):
            crv = None
            size = int(spec.get("key_size") or 2048)
            if size not in (2048, 3072, 4096):
                raise KvError(400, "BadParameter", f"Invalid key size: {size}.")
            private = private or rsa.generate_private_key(public_exponent=65537, key_size=size)
        else:
            raise KvError(400, "BadParameter", f"Invalid key type: {kty}.")
        ops = spec.get("key_ops") or ["sign", "verify"]
        now = int(time.time())
        version = uuid.uuid4().hex
        entry = {
            "version": version,
            "kty": kty,
            "crv": crv,
            "private": private,
            "key_ops": list(ops),
            "enabled": spec.get("attributes", {}).get("enabled", True),
            "created": now,
            "tags": spec.get("tags") or {},
        }
        with self.lock:
            self.keys.setdefault(name, []).append(entry)
        return entry

    def find(self, name, version=None, what="key"):
        versions = self.keys.get(name)
        if versions and version is None:
            return versions[-1]
        for v in versions or []:
            if v["version"] == version:
                return v
        ident = f"{name}/{version}" if version else name
        raise KvError(
            404,
            "KeyNotFound",
            f"A key with (name/id) {ident} was not found in this key vault. If you recently "
            "deleted this key you may be able to recover it using the correct recovery command.",
        )

    def bundle(self, name, v):
        pub = v["private"].public_key()
        key = {"kid": f"{self.base}/keys/{name}/{v['version']}", "kty": v["kty"],
               "key_ops": v["key_ops"]}
        if v["crv"]:
            nums = pub.public_numbers()
            size = CURVES[v["crv"]][1]
            key.update(crv=v["crv"], x=b64url(int_bytes(nums.x, size)),
                       y=b64url(int_bytes(nums.y, size)))
        else:
            nums = pub.public_numbers()
            key.update(n=b64url(int_bytes(nums.n)), e=b64url(int_bytes(nums.e)))
        return {
            "key": key,
            "attributes": {"enabled": v["enabled"], "created": v["created"],
                           "updated": v["created"], "recoveryLevel": "Recoverable+Purgeable",
                           "recoverableDays": 90, "exportable": False},
            "tags": v["tags"],
        }

    # --- certificates -------------------------------------------------------------------------
    def make_certificate(self, name, spec):
        entry = self.new_version(name, spec)
        signer = entry["private"]
        subject_key = signer.public_key()
        if spec.get("mismatch"):
            subject_key = ec.generate_private_key(ec.SECP256R1()).public_key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, spec.get("subject", name))])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(subject_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .sign(signer, hashes.SHA256())
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        with self.lock:
            self.certs.setdefault(name, {})[entry["version"]] = der
        return entry, der

    def certificate(self, name, version=None):
        versions = self.certs.get(name, {})
        if version is None and versions:
            version = list(versions)[-1]
        if version not in versions:
            raise KvError(404, "CertificateNotFound",
                          f"A certificate with (name/id) {name} was not found in this key vault.")
        der = versions[version]
        return {
            "id": f"{self.base}/certificates/{name}/{version}",
            "kid": f"{self.base}/keys/{name}/{version}",
            "sid": f"{self.base}/secrets/{name}/{version}",
            "x5t": b64url(hashlib.sha1(der).digest()),
            "cer": base64.b64encode(der).decode(),
            "attributes": {"enabled": True, "recoveryLevel": "Recoverable+Purgeable"},
        }

    # --- faults -------------------------------------------------------------------------------
    def take_rule(self, op, name):
        with self.lock:
            for rule in self.rules:
                if rule.get("op") != op or rule.get("name", name) != name:
                    continue
                times = rule.get("times", 1)
                if times == 0:
                    continue
                if times > 0:
                    rule["times"] = times - 1
                return dict(rule)
        return None


def sign_digest(v, alg, digest):
    key = v["private"]
    if v["crv"]:
        expected = EC_ALG[v["crv"]]
        if alg != expected:
            raise KvError(400, "BadParameter", "Key and signing algorithm are incompatible.")
        hash_cls, hash_len = HASHES[expected[2:5]]
        if len(digest) != hash_len:
            raise KvError(400, "BadParameter", "Invalid length of the digest.")
        der = key.sign(digest, ec.ECDSA(asym_utils.Prehashed(hash_cls())))
        r, s = asym_utils.decode_dss_signature(der)
        size = CURVES[v["crv"]][1]
        return int_bytes(r, size) + int_bytes(s, size)
    if alg not in RSA_ALGS:
        raise KvError(400, "BadParameter", "Key and signing algorithm are incompatible.")
    hash_cls, hash_len = HASHES[alg[2:]]
    if len(digest) != hash_len:
        raise KvError(400, "BadParameter", "Invalid length of the digest.")
    if alg.startswith("PS"):
        pad = padding.PSS(mgf=padding.MGF1(hash_cls()), salt_length=hash_len)
    else:
        pad = padding.PKCS1v15()
    return key.sign(digest, pad, asym_utils.Prehashed(hash_cls()))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: with Nagle's algorithm on, the client's delayed ACK
    # holds the body back ~40 ms per response on a kept-alive connection.
    disable_nagle_algorithm = True
    state: State = None  # set by main

    def log_message(self, *args):  # quiet
        pass

    # --- plumbing -----------------------------------------------------------------------------
    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send_json(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def dispatch(self, method):
        st = self.state
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        query = parse_qs(url.query)
        raw = self.read_body()
        try:
            if parts[:1] == ["_admin"]:
                return self.admin(method, parts[1:], query, raw)
            if len(parts) == 3 and parts[1:] == ["oauth2", "v2.0"]:
                raise KvError(404, "NotFound", "no such endpoint")
            if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"] and method == "POST":
                return self.token(parts[0], raw)
            self.vault(method, parts, query, raw)
        except KvError as e:
            self.send_json(e.status, e.body(), e.headers)

    # --- Entra ID -----------------------------------------------------------------------------
    def token(self, tenant, raw):
        st = self.state
        st.calls["token"] += 1
        rule = st.take_rule("token", None)
        if rule and rule.get("status"):
            return self.send_json(rule["status"], {"error": rule.get("code", "temporarily_unavailable"),
                                                   "error_description": rule.get("message", "fault")})
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        if tenant != TENANT:
            return self.send_json(400, {"error": "invalid_request",
                                        "error_description": f"AADSTS90002: Tenant '{tenant}' not found."})
        if form.get("grant_type") != "client_credentials":
            return self.send_json(400, {"error": "unsupported_grant_type",
                                        "error_description": "AADSTS70003: unsupported grant type"})
        if "client_assertion" in form:
            # Workload identity: the federated token from AZURE_FEDERATED_TOKEN_FILE.
            if (form.get("client_assertion_type") != JWT_BEARER
                    or form.get("client_id") != CLIENT_ID
                    or form.get("client_assertion") != FEDERATED_TOKEN):
                return self.send_json(401, {"error": "invalid_client",
                                            "error_description": "AADSTS700211: No matching federated identity record found for presented assertion."})
        elif form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return self.send_json(401, {"error": "invalid_client",
                                        "error_description": "AADSTS7000215: Invalid client secret provided."})
        scope = form.get("scope", "")
        if scope != f"{VAULT_RESOURCE}/.default":
            return self.send_json(400, {"error": "invalid_scope",
                                        "error_description": f"AADSTS70011: The provided value for scope {scope} is not valid."})
        token = "kv-" + uuid.uuid4().hex
        with st.lock:
            st.tokens[token] = scope
        self.send_json(200, {"token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
                             "ext_expires_in": TOKEN_LIFETIME, "access_token": token})

    # --- the vault ----------------------------------------------------------------------------
    def vault(self, method, parts, query, raw):
        st = self.state
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        if token is None or st.tokens.get(token) != f"{VAULT_RESOURCE}/.default":
            with st.lock:
                st.calls["unauthenticated"] += 1
                if raw:
                    st.calls["unauthenticated_with_body"] += 1
            raise KvError(
                401, "Unauthorized",
                "AKV10000: Request is missing a Bearer or PoP token." if token is None
                else "AKV10032: Invalid issuer.",
                headers={"WWW-Authenticate":
                         f'Bearer authorization="{st.base}/{TENANT}", resource="{VAULT_RESOURCE}"'},
            )
        if "api-version" not in query:
            raise KvError(400, "BadParameter", "The 'api-version' query parameter is missing.")
        if method == "GET" and len(parts) in (2, 3) and parts[0] == "keys":
            op, name = "get_key", parts[1]
        elif method == "POST" and len(parts) == 3 and parts[0] == "keys" and parts[2] == "create":
            op, name = "create_key", parts[1]
        elif method == "POST" and len(parts) == 4 and parts[0] == "keys" and parts[3] == "sign":
            op, name = "sign", parts[1]
        elif method == "GET" and len(parts) in (2, 3) and parts[0] == "certificates":
            op, name = "get_certificate", parts[1]
        else:
            raise KvError(404, "NotFound", f"{method} {self.path} is not a Key Vault operation this double serves.")
        with st.lock:
            st.calls[op] += 1
            st.calls[f"{op}:{name}"] += 1
        rule = st.take_rule(op, name)
        if rule:
            if rule.get("delay_ms"):
                time.sleep(rule["delay_ms"] / 1000)
            if rule.get("status"):
                headers = {}
                if rule.get("retry_after") is not None:
                    headers["Retry-After"] = str(rule["retry_after"])
                if rule.get("www_authenticate") is not None:
                    headers["WWW-Authenticate"] = rule["www_authenticate"].replace("{base}", st.base)
                raise KvError(rule["status"], rule.get("code", "Fault"),
                              rule.get("message", "injected fault"), rule.get("inner"), headers)
        body = json.loads(raw) if raw else {}
        if op == "create_key":
            v = st.new_version(name, body)
            with st.lock:
                out = st.bundle(name, v)
        else:
            with st.lock:
                out = self.vault_op(op, name, parts, body)
        mutate = rule.get("mutate") if rule else None
        if mutate == "truncate_signature":
            out["value"] = b64url(b64url_decode(out["value"])[:-1])
        elif mutate == "kid":
            out["kid"] = f"{st.base}/keys/{name}/{'0' * 32}"
        self.send_json(200, out)

    def vault_op(self, op, name, parts, body):
        st = self.state
        if op == "get_key":
            v = st.find(name, parts[2] if len(parts) == 3 else None)
            out = st.bundle(name, v)
        elif op == "get_certificate":
            out = st.certificate(name, parts[2] if len(parts) == 3 else None)
        else:
            v = st.find(name, parts[2])
            if not v["enabled"]:
                raise KvError(403, "Forbidden", "Operation sign is not allowed on a disabled key.",
                              "KeyDisabled")
            if "sign" not in v["key_ops"]:
                raise KvError(403, "Forbidden", "Operation sign is not permitted on this key.",
                              "KeyOperationForbidden")
            alg, value = body.get("alg"), body.get("value")
            if not isinstance(alg, str) or not isinstance(value, str):
                raise KvError(400, "BadParameter", "Property alg and value are required.")
            sig = sign_digest(v, alg, b64url_decode(value))
            out = {"kid": f"{st.base}/keys/{name}/{v['version']}", "value": b64url(sig)}
        return out

    # --- test controls ------------------------------------------------------------------------
    def admin(self, method, parts, query, raw):
        st = self.state
        body = json.loads(raw) if raw else {}
        if method == "POST" and parts == ["faults"]:
            with st.lock:
                st.rules.extend(body.get("rules", []))
            return self.send_json(200, {"rules": len(st.rules)})
        if method == "POST" and parts == ["reset"]:
            with st.lock:
                st.rules.clear()
                st.calls.clear()
            return self.send_json(200, {})
        if method == "GET" and parts == ["calls"]:
            name = query.get("name", [None])[0]
            with st.lock:
                if name is None:
                    out = {k: n for k, n in st.calls.items() if ":" not in k}
                else:
                    out = {k.split(":")[0]: n for k, n in st.calls.items() if k.endswith(f":{name}")}
            return self.send_json(200, out)
        if method == "POST" and len(parts) == 2 and parts[0] == "certificates":
            entry, der = st.make_certificate(parts[1], body)
            return self.send_json(200, {"version": entry["version"],
                                        "kid": f"{st.base}/keys/{parts[1]}/{entry['version']}",
                                        "cer": base64.b64encode(der).decode()})
        if method == "POST" and len(parts) == 2 and parts[0] == "create":
            v = st.new_version(parts[1], body)
            with st.lock:
                out = st.bundle(parts[1], v)
            return self.send_json(200, out)
        if method == "POST" and len(parts) == 2 and parts[0] == "keys":
            with st.lock:
                v = st.find(parts[1], body.get("version"))
                if "enabled" in body:
                    v["enabled"] = bool(body["enabled"])
                if "key_ops" in body:
                    v["key_ops"] = list(body["key_ops"])
                return self.send_json(200, st.bundle(parts[1], v))
        raise KvError(404, "NotFound", f"no admin endpoint {method} /_admin/{'/'.join(parts)}")


def make_tls(ca_dir):
    """A test CA (written to ca_dir/ca.pem) and a server certificate for 127.0.0.1/localhost."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pkjwt Azure Key Vault double test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    os.makedirs(ca_dir, exist_ok=True)
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    with open(os.path.join(ca_dir, "ca.pem.tmp"), "wb") as f:
        f.write(ca_pem)
    os.replace(os.path.join(ca_dir, "ca.pem.tmp"), os.path.join(ca_dir, "ca.pem"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        with open(cert_path, "wb") as f:
            f.write(leaf.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        ctx.load_cert_chain(cert_path, key_path)
    return ctx


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ca-dir", required=True, help="where to write ca.pem")
    ap.add_argument("--no-stdin-watch", action="store_true")
    args = ap.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        ap.error("the double listens on loopback only")
    ctx = make_tls(args.ca_dir)
    state = State()
    Handler.state = state
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    state.base = f"https://127.0.0.1:{port}"
    if not args.no_stdin_watch:
        threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    print(f"READY {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
