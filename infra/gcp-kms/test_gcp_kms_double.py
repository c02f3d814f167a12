"""Holds the Cloud KMS double (gcp_kms_double.py) to the API reference: request and answer
shapes, the CRC32C rules, error bodies and codes, key states, IAM, the token endpoints.

Run: ``.venv/bin/python -m pytest infra/gcp-kms`` (infra/ci/test-gcp-kms.sh does).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

import gcp_kms_double as d

RING = "projects/p/locations/global/keyRings/r"


@pytest.fixture(scope="module")
def srv():
    server, state = d.serve(0, pending_ms=300)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()


def call(state, method, path, body=None, token=None, form=None):
    url = f"http://127.0.0.1:{state.port}{path}"
    data, headers = None, {}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def jwt(key, header, claims):
    enc = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()
    head = f"{enc(header)}.{enc(claims)}"
    sig = key.sign(head.encode(), padding.PKCS1v15(), hashes.SHA256())
    return head + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


def service_token(state):
    _, sa = call(state, "POST", "/_pkjwt/service-account", {})
    key = serialization.load_pem_private_key(sa["private_key"].encode(), None)
    now = int(time.time())
    claims = {"iss": sa["client_email"], "aud": sa["token_uri"], "scope": d.SCOPE,
              "iat": now, "exp": now + 3600}
    code, out = call(state, "POST", "/token", form={
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": jwt(key, {"alg": "RS256", "typ": "JWT"}, claims)})
    assert code == 200, out
    return out["access_token"], sa, key


def new_key(srv, name, alg, **kw):
    code, out = call(srv, "POST", "/_pkjwt/keys", {"name": name, "algorithm": alg, **kw})
    assert code == 200, out
    return out["name"]


def sign_body(digest: bytes, field="sha256", crc=True):
    b = {"digest": {field: base64.b64encode(digest).decode()}}
    if crc:
        b["digestCrc32c"] = str(d.crc32c(digest))
    return b


def test_crc32c_vectors():
    assert d.crc32c(b"123456789") == 0xE3069283
    assert d.crc32c(bytes(32)) == 0x8A9136AA


def test_token_grant_checks_the_assertion(srv):
    token, sa, key = service_token(srv)
    assert token.startswith("ya29.")
    now = int(time.time())
    base = {"iss": sa["client_email"], "aud": sa["token_uri"], "scope": d.SCOPE, "iat": now, "exp": now + 3600}
    for claims, want in [
        ({**base, "aud": "https://oauth2.googleapis.com/token"}, "aud"),
        ({**base, "exp": now - 10}, "short-lived"),
        ({**base, "scope": "openid"}, "cloud-platform"),
        ({**base, "iss": "other@x"}, "Signature"),
    ]:
        code, out = call(srv, "POST", "/token", form={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": jwt(key, {"alg": "RS256"}, claims)})
        assert code == 400 and want in out["error_description"], out
    code, out = call(srv, "POST", "/token", form={"grant_type": "password"})
    assert code == 400 and out["error"] == "unsupported_grant_type"


def test_kms_needs_a_token(srv):
    name = new_key(srv, f"{RING}/cryptoKeys/auth/cryptoKeyVersions/1", "EC_SIGN_P256_SHA256")
    code, out = call(srv, "GET", f"/v1/{name}/publicKey")
    assert code == 401 and out["error"]["status"] == "UNAUTHENTICATED"
    code, out = call(srv, "GET", f"/v1/{name}/publicKey", token="ya29.forged")
    assert code == 401


def test_public_key_and_sign_shapes(srv):
    token, _, _ = service_token(srv)
    name = new_key(srv, f"{RING}/cryptoKeys/ec/cryptoKeyVersions/1", "EC_SIGN_P256_SHA256")
    code, pk = call(srv, "GET", f"/v1/{name}/publicKey", token=token)
    assert code == 200
    assert set(pk) >= {"pem", "algorithm", "pemCrc32c", "name", "protectionLevel"}
    assert isinstance(pk["pemCrc32c"], str)  # int64 is a string in proto3 JSON
    assert int(pk["pemCrc32c"]) == d.crc32c(pk["pem"].encode())
    pub = serialization.load_pem_public_key(pk["pem"].encode())
    digest = hashlib.sha256(b"message").digest()
    code, out = call(srv, "POST", f"/v1/{name}:asymmetricSign", sign_body(digest), token)
    assert code == 200, out
    sig = base64.b64decode(out["signature"])
    assert out["verifiedDigestCrc32c"] is True and out["name"] == name
    assert int(out["signatureCrc32c"]) == d.crc32c(sig)
    pub.verify(sig, b"message", ec.ECDSA(hashes.SHA256()))  # DER, over the message's hash
    # Without digestCrc32c the service signs but does not claim to have verified it.
    code, out = call(srv, "POST", f"/v1/{name}:asymmetricSign", sign_body(digest, crc=False), token)
    assert code == 200 and out["verifiedDigestCrc32c"] is False


def test_pss_salt_is_the_digest_length(srv):
    token, _, _ = service_token(srv)
    name = new_key(srv, f"{RING}/cryptoKeys/pss/cryptoKeyVersions/1", "RSA_SIGN_PSS_2048_SHA256")
    _, pk = call(srv, "GET", f"/v1/{name}/publicKey", token=token)
    pub = serialization.load_pem_public_key(pk["pem"].encode())
    code, out = call(srv, "POST", f"/v1/{name}:asymmetricSign", sign_body(hashlib.sha256(b"m").digest()), token)
    pub.verify(base64.b64decode(out["signature"]), b"m",
               padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())


def test_crc_and_algorithm_rules(srv):
    token, _, _ = service_token(srv)
    name = new_key(srv, f"{RING}/cryptoKeys/rules/cryptoKeyVersions/1", "EC_SIGN_P256_SHA256")
    digest = hashlib.sha256(b"x").digest()
    bad_crc = {**sign_body(digest), "digestCrc32c": str(d.crc32c(digest) ^ 1)}
    for body, want in [
        (bad_crc, "digest_crc32c"),
        (sign_body(hashlib.sha384(b"x").digest(), "sha384"), "does not match the algorithm"),
        (sign_body(digest[:31]), "Digest of 31 bytes"),
        ({"data": "eA=="}, "Exactly one digest"),
    ]:
        code, out = call(srv, "POST", f"/v1/{name}:asymmetricSign", body, token)
        assert code == 400 and out["error"]["status"] == "INVALID_ARGUMENT" and want in out["error"]["message"], out
    ed = new_key(srv, f"{RING}/cryptoKeys/ed/cryptoKeyVersions/1", "EC_SIGN_ED25519")
    code, out = call(srv, "POST", f"/v1/{ed}:asymmetricSign", sign_body(digest), token)
    assert code == 400 and "signs data" in out["error"]["message"]
    code, out = call(srv, "POST", f"/v1/{ed}:asymmetricSign",
                     {"data": base64.b64encode(b"msg").decode(), "dataCrc32c": str(d.crc32c(b"msg"))}, token)
    assert code == 200 and out["verifiedDataCrc32c"] is True and len(base64.b64decode(out["signature"])) == 64


def test_not_found_states_and_purpose(srv):
    token, _, _ = service_token(srv)
    code, out = call(srv, "GET", f"/v1/{RING}/cryptoKeys/none/cryptoKeyVersions/1/publicKey", token=token)
    assert code == 404 and out["error"] == {"code": 404, "status": "NOT_FOUND", "message": out["error"]["message"]}
    for state in ("DISABLED", "DESTROYED", "DESTROY_SCHEDULED"):
        name = new_key(srv, f"{RING}/cryptoKeys/s-{state.lower()}/cryptoKeyVersions/1", "EC_SIGN_P256_SHA256", state=state)
        for method, path, body in [("GET", f"/v1/{name}/publicKey", None),
                                   ("POST", f"/v1/{name}:asymmetricSign", sign_body(bytes(32)))]:
            code, out = call(srv, method, path, body, token)
            assert code == 400 and out["error"]["status"] == "FAILED_PRECONDITION" and state in out["error"]["message"], out
    dec = new_key(srv, f"{RING}/cryptoKeys/dec/cryptoKeyVersions/1", "RSA_DECRYPT_OAEP_2048_SHA256", purpose="ASYMMETRIC_DECRYPT")
    code, out = call(srv, "GET", f"/v1/{dec}/publicKey", token=token)
    assert code == 200 and out["algorithm"] == "RSA_DECRYPT_OAEP_2048_SHA256"
    code, out = call(srv, "POST", f"/v1/{dec}:asymmetricSign", sign_body(bytes(32)), token)
    assert code == 400 and out["error"]["status"] == "FAILED_PRECONDITION"


def test_permission_denied_names_the_permission_before_existence(srv):
    token, _, _ = service_token(srv)
    call(srv, "POST", "/_pkjwt/deny", {"permission": "cloudkms.cryptoKeyVersions.useToSign",
                                        "resource": f"{RING}/cryptoKeys/denied"})
    name = new_key(srv, f"{RING}/cryptoKeys/denied/cryptoKeyVersions/1", "EC_SIGN_P256_SHA256")
    code, out = call(srv, "POST", f"/v1/{name}:asymmetricSign", sign_body(bytes(32)), token)
    assert code == 403 and out["error"]["status"] == "PERMISSION_DENIED"
    assert "cloudkms.cryptoKeyVersions.useToSign" in out["error"]["message"]
    code, _ = call(srv, "GET", f"/v1/{name}/publicKey", token=token)
    assert code == 200  # only the sign permission was withheld
    code, out = call(srv, "POST", f"/v1/{RING}/cryptoKeys/denied-nothere/cryptoKeyVersions/1:asymmetricSign", sign_body(bytes(32)), token)
    assert code == 403, "a denied caller must not learn whether the key exists"
    call(srv, "POST", "/_pkjwt/reset", {})


def test_create_key_and_generation(srv):
    token, _, _ = service_token(srv)
    ring = "projects/p/locations/europe-west1/keyRings/gen"
    code, out = call(srv, "POST", f"/v1/{ring}/cryptoKeys?cryptoKeyId=k", {"purpose": "ASYMMETRIC_SIGN"}, token)
    assert code == 404, "no key ring yet"
    code, _ = call(srv, "POST", "/v1/projects/p/locations/europe-west1/keyRings?keyRingId=gen", {}, token)
    assert code == 200
    body = {"purpose": "ASYMMETRIC_SIGN", "versionTemplate": {"algorithm": "EC_SIGN_P384_SHA384", "protectionLevel": "HSM"}}
    code, key = call(srv, "POST", f"/v1/{ring}/cryptoKeys?cryptoKeyId=k", body, token)
    assert code == 200 and "primary" not in key and key["purpose"] == "ASYMMETRIC_SIGN"
    code, out = call(srv, "POST", f"/v1/{ring}/cryptoKeys?cryptoKeyId=k", body, token)
    assert code == 409 and out["error"]["status"] == "ALREADY_EXISTS"
    v = f"{ring}/cryptoKeys/k/cryptoKeyVersions/1"
    _, out = call(srv, "GET", f"/v1/{v}", token=token)
    assert out["state"] == "PENDING_GENERATION"
    time.sleep(0.4)
    _, out = call(srv, "GET", f"/v1/{v}", token=token)
    assert out["state"] == "ENABLED"
    bad = {"purpose": "ASYMMETRIC_SIGN", "versionTemplate": {"algorithm": "GOOGLE_SYMMETRIC_ENCRYPTION"}}
    code, out = call(srv, "POST", f"/v1/{ring}/cryptoKeys?cryptoKeyId=k2", bad, token)
    assert code == 400 and "not compatible" in out["error"]["message"]
    k1 = {"purpose": "ASYMMETRIC_SIGN", "versionTemplate": {"algorithm": "EC_SIGN_SECP256K1_SHA256", "protectionLevel": "SOFTWARE"}}
    code, out = call(srv, "POST", f"/v1/{ring}/cryptoKeys?cryptoKeyId=k3", k1, token)
    assert code == 400 and "HSM" in out["error"]["message"]


def test_faults_and_counts(srv):
    token, _, _ = service_token(srv)
    name = new_key(srv, f"{RING}/cryptoKeys/faults/cryptoKeyVersions/1", "EC_SIGN_P256_SHA256")
    call(srv, "POST", "/_pkjwt/faults", {"rules": [
        {"op": "asymmetricSign", "name": name, "times": 1,
         "error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Quota exceeded"}},
        {"op": "asymmetricSign", "name": name, "times": 1, "corrupt": "signatureCrc32c"}]})
    code, out = call(srv, "POST", f"/v1/{name}:asymmetricSign", sign_body(bytes(32)), token)
    assert code == 429 and out["error"]["status"] == "RESOURCE_EXHAUSTED"
    code, out = call(srv, "POST", f"/v1/{name}:asymmetricSign", sign_body(bytes(32)), token)
    assert code == 200 and int(out["signatureCrc32c"]) != d.crc32c(base64.b64decode(out["signature"]))
    code, out = call(srv, "POST", f"/v1/{name}:asymmetricSign", sign_body(bytes(32)), token)
    assert code == 200 and int(out["signatureCrc32c"]) == d.crc32c(base64.b64decode(out["signature"]))
    _, counts = call(srv, "GET", f"/_pkjwt/calls?name={urllib.parse.quote(name)}")
    assert counts == {"asymmetricSign": 3}
    call(srv, "POST", "/_pkjwt/reset", {})


def test_workload_identity_federation(srv, tmp_path):
    _, out = call(srv, "POST", "/_pkjwt/external-account", {"subject_token_file": str(tmp_path / "t")})
    cfg = out["config"]
    code, sts = call(srv, "POST", "/sts/v1/token", form={
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "audience": cfg["audience"],
        "scope": d.SCOPE, "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "subject_token_type": cfg["subject_token_type"], "subject_token": out["subject_token"]})
    assert code == 200, sts
    path = urllib.parse.urlsplit(cfg["service_account_impersonation_url"]).path
    code, imp = call(srv, "POST", path, {"scope": [d.SCOPE], "lifetime": "3600s"}, sts["access_token"])
    assert code == 200 and imp["accessToken"]
    code, out = call(srv, "POST", "/sts/v1/token", form={
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "audience": cfg["audience"],
        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token", "subject_token": "forged"})
    assert code == 400 and out["error"] == "invalid_grant"


def test_keep_alive_survives_a_fault_answered_before_the_body(srv):
    """A fault answered without reading the request body must not corrupt the connection."""
    import http.client
    token, _, _ = service_token(srv)
    name = new_key(srv, f"{RING}/cryptoKeys/keepalive/cryptoKeyVersions/1", "EC_SIGN_P256_SHA256")
    call(srv, "POST", "/_pkjwt/faults", {"rules": [{"op": "asymmetricSign", "name": name, "times": 1,
        "error": {"code": 503, "status": "UNAVAILABLE", "message": "down"}}]})
    conn = http.client.HTTPConnection("127.0.0.1", srv.port)
    body = json.dumps(sign_body(bytes(32)))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for want in (503, 200):
        conn.request("POST", f"/v1/{name}:asymmetricSign", body, headers)
        r = conn.getresponse()
        r.read()
        assert r.status == want
    conn.close()


def test_refresh_token_grant_of_user_credentials(srv):
    _, user = call(srv, "POST", "/_pkjwt/authorized-user", {})
    form = {"grant_type": "refresh_token", "client_id": user["client_id"],
            "client_secret": user["client_secret"], "refresh_token": user["refresh_token"]}
    code, out = call(srv, "POST", "/token", form=form)
    assert code == 200 and out["access_token"].startswith("ya29.")
    code, out = call(srv, "POST", "/token", form={**form, "refresh_token": "1//revoked"})
    assert code == 400 and out["error"] == "invalid_grant"
    code, out = call(srv, "POST", "/token", form={**form, "client_secret": "wrong"})
    assert code == 401 and out["error"] == "invalid_client"
