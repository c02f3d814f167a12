"""Holds the Azure Key Vault double to the REST reference it follows (docs/azure-kv.md lists which
behaviours are from the reference and which are assumed). Run by infra/ci/test.sh:

    .venv/bin/python -m pytest -q infra/azure-kv
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric import utils as asym_utils

HERE = os.path.dirname(os.path.abspath(__file__))
TENANT, CLIENT_ID, SECRET = "pkjwt-test-tenant", "pkjwt-test-client", "pkjwt-test-secret"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture(scope="module")
def double():
    ca_dir = tempfile.mkdtemp(prefix="pkjwt-azure-kv-double-test-")
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "azure_kv_double.py"), "--ca-dir", ca_dir],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("READY "), line
    port = int(line.split()[1])
    ctx = ssl.create_default_context(cafile=os.path.join(ca_dir, "ca.pem"))
    yield f"https://127.0.0.1:{port}", ctx
    proc.stdin.close()
    proc.wait(timeout=10)


def call(double, method, path, body=None, token=None, form=None, raw=None):
    base, ctx = double
    headers = {}
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    elif raw is not None:
        data = raw
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, context=ctx) as r:
            return r.status, dict(r.headers), json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"{}")


def token(double, scope="https://vault.azure.net/.default", secret=SECRET, tenant=TENANT):
    return call(double, "POST", f"/{tenant}/oauth2/v2.0/token",
                form={"client_id": CLIENT_ID, "client_secret": secret,
                      "grant_type": "client_credentials", "scope": scope})


@pytest.fixture(scope="module")
def tok(double):
    status, _, body = token(double)
    assert status == 200 and body["token_type"] == "Bearer" and body["expires_in"] > 0
    return body["access_token"]


def test_unauthenticated_request_gets_the_challenge(double):
    base, _ = double
    status, headers, body = call(double, "GET", "/keys/k?api-version=7.5")
    assert status == 401
    assert headers["WWW-Authenticate"] == (
        f'Bearer authorization="{base}/{TENANT}", resource="https://vault.azure.net"')
    assert body["error"]["code"] == "Unauthorized"


def test_token_endpoint_errors(double):
    assert token(double, secret="nope")[0] == 401
    assert token(double, secret="nope")[2]["error"] == "invalid_client"
    assert token(double, tenant="other")[2]["error"] == "invalid_request"
    assert token(double, scope="https://graph.microsoft.com/.default")[2]["error"] == "invalid_scope"


def test_federated_token_for_workload_identity(double):
    form = {"client_id": CLIENT_ID, "grant_type": "client_credentials",
            "scope": "https://vault.azure.net/.default",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": "pkjwt-test-federated-token"}
    status, _, body = call(double, "POST", f"/{TENANT}/oauth2/v2.0/token", form=form)
    assert status == 200 and body["access_token"]
    form["client_assertion"] = "other"
    status, _, body = call(double, "POST", f"/{TENANT}/oauth2/v2.0/token", form=form)
    assert status == 401 and "AADSTS700211" in body["error_description"]


def test_a_token_for_another_scope_or_none_is_refused(double, tok):
    assert call(double, "GET", "/keys/k?api-version=7.5", token="made-up")[0] == 401
    assert call(double, "GET", "/keys/k", token=tok)[2]["error"]["code"] == "BadParameter"


@pytest.mark.parametrize("spec,alg,hash_cls", [
    ({"kty": "EC", "crv": "P-256"}, "ES256", hashes.SHA256),
    ({"kty": "EC-HSM", "crv": "P-384"}, "ES384", hashes.SHA384),
    ({"kty": "EC", "crv": "P-521"}, "ES512", hashes.SHA512),
    ({"kty": "EC", "crv": "P-256K"}, "ES256K", hashes.SHA256),
    ({"kty": "RSA", "key_size": 2048}, "PS256", hashes.SHA256),
    ({"kty": "RSA-HSM", "key_size": 2048}, "RS384", hashes.SHA384),
])
def test_create_get_sign_verify(double, tok, spec, alg, hash_cls):
    name = f"t-{alg.lower()}"
    status, _, created = call(double, "POST", f"/keys/{name}/create?api-version=7.5", spec, tok)
    assert status == 200, created
    key = created["key"]
    assert key["kty"] == spec["kty"] and key["key_ops"] == ["sign", "verify"]
    assert created["attributes"]["enabled"] is True
    version = key["kid"].rsplit("/", 1)[1]
    assert len(version) == 32
    status, _, got = call(double, "GET", f"/keys/{name}?api-version=7.5", token=tok)
    assert got["key"] == key
    digest = hashlib.new(hash_cls.name, b"header.payload").digest()
    status, _, signed = call(double, "POST", f"/keys/{name}/{version}/sign?api-version=7.5",
                             {"alg": alg, "value": b64url(digest)}, tok)
    assert status == 200 and signed["kid"] == key["kid"]
    sig = unb64url(signed["value"])
    if spec["kty"].startswith("EC"):
        curve = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1,
                 "P-256K": ec.SECP256K1}[key["crv"]]()
        x, y = (int.from_bytes(unb64url(key[c]), "big") for c in "xy")
        pub = ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
        size = len(unb64url(key["x"]))
        assert len(sig) == 2 * size  # raw r || s, as the reference says for EC
        der = asym_utils.encode_dss_signature(int.from_bytes(sig[:size], "big"),
                                              int.from_bytes(sig[size:], "big"))
        pub.verify(der, digest, ec.ECDSA(asym_utils.Prehashed(hash_cls())))
    else:
        n, e = (int.from_bytes(unb64url(key[c]), "big") for c in "ne")
        pub = rsa.RSAPublicNumbers(e, n).public_key()
        pad = (padding.PSS(mgf=padding.MGF1(hash_cls()), salt_length=hash_cls.digest_size)
               if alg.startswith("PS") else padding.PKCS1v15())
        pub.verify(sig, digest, pad, asym_utils.Prehashed(hash_cls()))


def test_errors_follow_the_reference(double, tok):
    status, _, body = call(double, "GET", "/keys/missing?api-version=7.5", token=tok)
    assert status == 404 and body["error"]["code"] == "KeyNotFound"
    status, _, created = call(double, "POST", "/keys/e/create?api-version=7.5", {"kty": "EC"}, tok)
    version = created["key"]["kid"].rsplit("/", 1)[1]
    sign = f"/keys/e/{version}/sign?api-version=7.5"
    # Wrong algorithm for the key, and a digest of the wrong length: 400 BadParameter.
    for alg, digest in (("PS256", b"\0" * 32), ("ES256", b"\0" * 31)):
        status, _, body = call(double, "POST", sign, {"alg": alg, "value": b64url(digest)}, tok)
        assert status == 400 and body["error"]["code"] == "BadParameter", body
    # Bad key parameters on create.
    assert call(double, "POST", "/keys/x/create?api-version=7.5", {"kty": "oct"}, tok)[0] == 400
    assert call(double, "POST", "/keys/x/create?api-version=7.5",
                {"kty": "RSA", "key_size": 1024}, tok)[0] == 400
    # Disabled: 403 Forbidden with inner error KeyDisabled.
    call(double, "POST", "/_admin/keys/e", {"enabled": False})
    status, _, body = call(double, "POST", sign, {"alg": "ES256", "value": b64url(b"\0" * 32)}, tok)
    assert status == 403 and body["error"]["code"] == "Forbidden"
    assert body["error"]["innererror"]["code"] == "KeyDisabled"


def test_faults_and_call_counts(double, tok):
    call(double, "POST", "/keys/f/create?api-version=7.5", {"kty": "EC"}, tok)
    call(double, "POST", "/_admin/faults", {"rules": [
        {"op": "get_key", "name": "f", "status": 429, "code": "Throttled", "retry_after": 7},
        {"op": "get_key", "name": "f", "status": 403, "code": "Forbidden", "inner": "ForbiddenByRbac"},
    ]})
    status, headers, body = call(double, "GET", "/keys/f?api-version=7.5", token=tok)
    assert status == 429 and headers["Retry-After"] == "7"
    status, _, body = call(double, "GET", "/keys/f?api-version=7.5", token=tok)
    assert status == 403 and body["error"]["innererror"]["code"] == "ForbiddenByRbac"
    assert call(double, "GET", "/keys/f?api-version=7.5", token=tok)[0] == 200
    counts = call(double, "GET", "/_admin/calls?name=f")[2]
    assert counts["get_key"] == 3 and counts["create_key"] == 1


def test_certificate_of_a_key(double, tok):
    made = call(double, "POST", "/_admin/certificates/c", {"kty": "EC", "subject": "CN=c"})[2]
    status, _, cert = call(double, "GET", "/certificates/c?api-version=7.5", token=tok)
    assert status == 200 and cert["kid"] == made["kid"]
    der = base64.b64decode(cert["cer"])
    assert cert["x5t"] == b64url(hashlib.sha1(der).digest())
    parsed = x509.load_der_x509_certificate(der)
    key = call(double, "GET", "/keys/c?api-version=7.5", token=tok)[2]["key"]
    assert parsed.public_key().public_numbers().x == int.from_bytes(unb64url(key["x"]), "big")
    status, _, body = call(double, "GET", "/certificates/none?api-version=7.5", token=tok)
    assert status == 404 and body["error"]["code"] == "CertificateNotFound"
