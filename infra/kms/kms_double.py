"""pkjwt's AWS KMS test double.

moto 5.2.5 serves the KMS wire protocol (JSON 1.1, ``X-Amz-Target: TrentService.<Op>``) but
differs from the KMS API reference where pkjwt's backend depends on it (see
``docs/aws-kms.md`` and ``/work/shared/docs/test-peers.md``). This module patches moto's KMS
handlers so that, for the operations pkjwt uses, the server behaves as the API reference says:

* ``Sign`` with ``MessageType=DIGEST`` signs the digest (moto hashes it again); the digest must
  be exactly as long as the algorithm's hash (``ValidationException`` otherwise); a RAW message
  must be 1..4096 bytes.
* ``RSASSA_PSS_*`` uses a salt as long as the hash (moto uses the maximum salt).
* A ``Disabled`` key gives ``DisabledException``; a key ``PendingDeletion`` gives
  ``KMSInvalidStateException`` (moto signs with both).
* A signing algorithm the key does not support, or a key whose usage is not ``SIGN_VERIFY``,
  gives ``InvalidKeyUsageException`` (moto: ``ValidationException``).
* ``GetPublicKey`` answers ``KeySpec`` as well as the deprecated ``CustomerMasterKeySpec``, and
  ``KeyId`` as the key ARN; on a symmetric key it gives ``UnsupportedOperationException``.
* ``ECC_NIST_EDWARDS25519`` keys exist and sign with ``ED25519_SHA_512`` (``MessageType=RAW``
  only), which moto 5.2.5 does not know.

On top of that it adds what a test needs and real KMS cannot do on demand, under ``/_pkjwt/``:

* ``POST /_pkjwt/faults`` ``{"rules": [...]}`` appends fault rules. A rule matches an operation
  (``"Sign"``), optionally a ``key_id`` exactly as the client sent it (``KeyId``, or
  ``AliasName`` for the alias operations), ``times`` (``-1`` = for
  ever); it may delay (``delay_ms``), answer an error (``type``, ``message``, ``status``), or
  drop fields from the real answer (``drop_fields``, e.g. ``["KeySpec"]`` to answer as stock
  moto does).
* ``GET /_pkjwt/calls?key_id=K`` returns ``{"Sign": n, "GetPublicKey": m, ...}`` counted as the
  requests arrive (all keys if ``key_id`` is absent); ``POST /_pkjwt/reset`` clears rules and
  counters.
* every response carries ``x-amzn-RequestId`` as AWS's do.

Run: ``python kms_double.py [--port 0]``; it prints ``READY <port>`` on stdout once listening and
exits when its stdin closes (so a test harness that dies never leaves it behind) unless
``--no-stdin-watch`` is given.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import sys
import threading
import time
import uuid
from urllib.parse import parse_qs

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding
from cryptography.hazmat.primitives.asymmetric import utils as asym_utils
from moto.core.exceptions import JsonRESTError
from moto.kms import models as kms_models
from moto.kms import responses as kms_responses

MAX_RAW_MESSAGE = 4096

HASHES = {
    "SHA_256": hashes.SHA256,
    "SHA_384": hashes.SHA384,
    "SHA_512": hashes.SHA512,
}

RSA_ALGS = [
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
]

# Signing algorithms per key spec, from the KMS developer guide ("Asymmetric key specs").
KEY_SPEC_ALGS = {
    "ECC_NIST_P256": ["ECDSA_SHA_256"],
    "ECC_SECG_P256K1": ["ECDSA_SHA_256"],
    "ECC_NIST_P384": ["ECDSA_SHA_384"],
    "ECC_NIST_P521": ["ECDSA_SHA_512"],
    "RSA_2048": RSA_ALGS,
    "RSA_3072": RSA_ALGS,
    "RSA_4096": RSA_ALGS,
    "ECC_NIST_EDWARDS25519": ["ED25519_SHA_512", "ED25519_PH_SHA_512"],
}


class KmsError(JsonRESTError):
    """An error answered the way KMS does: HTTP 400, JSON body with ``__type`` and ``message``."""

    def __init__(self, error_type: str, message: str, status: int = 400):
        super().__init__(error_type, message)
        self.code = status


def hash_of(alg: str):
    """The hash class an ECDSA/RSA signing algorithm names, by its suffix."""
    for suffix, h in HASHES.items():
        if alg.endswith(suffix):
            return h
    raise KmsError("ValidationException", f"unknown signing algorithm {alg}")


class Ed25519Key:
    """Private key holder for ECC_NIST_EDWARDS25519, shaped like moto's key wrappers."""

    def __init__(self) -> None:
        self.private_key = ed25519.Ed25519PrivateKey.generate()

    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            encoding=serialization.Encoding.DER,
            format=serialization.PublicFormat.SubjectPublicKeyInfo,
        )

    def sign(self, message: bytes, signing_algorithm: str) -> bytes:
        return self.private_key.sign(message)

    def verify(self, message: bytes, signature: bytes, signing_algorithm: str) -> bool:
        try:
            self.private_key.public_key().verify(signature, message)
            return True
        except Exception:  # noqa: BLE001 - any failure is "does not verify"
            return False


# --- patches of moto's model -------------------------------------------------------------------

_moto_generate_private_key = kms_models.generate_private_key


def _generate_private_key(key_spec: str):
    if key_spec == "ECC_NIST_EDWARDS25519":
        return Ed25519Key()
    return _moto_generate_private_key(key_spec)


def _ensure_valid_key_spec(self, key_spec: str) -> None:
    valid = sorted(set(KEY_SPEC_ALGS) | {"SYMMETRIC_DEFAULT", "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512"})
    if key_spec not in valid:
        raise KmsError(
            "ValidationException",
            f"1 validation error detected: Value '{key_spec}' at 'KeySpec' failed to satisfy "
            f"constraint: Member must satisfy enum value set: {valid}",
        )


def _signing_algorithms(self):
    if self.key_usage != "SIGN_VERIFY":
        return None
    return list(KEY_SPEC_ALGS.get(self.key_spec, []))


kms_models.generate_private_key = _generate_private_key
kms_models.KmsBackend._KmsBackend__ensure_valid_key_spec = _ensure_valid_key_spec
kms_models.Key.signing_algorithms = property(_signing_algorithms)


# --- patches of moto's handlers ----------------------------------------------------------------


def _check_state(key) -> None:
    """KMS refuses every cryptographic operation unless the key is Enabled."""
    if key.key_state == "Disabled":
        raise KmsError("DisabledException", f"{key.arn} is disabled.")
    if key.key_state == "PendingDeletion":
        raise KmsError("KMSInvalidStateException", f"{key.arn} is pending deletion.")
    if key.key_state != "Enabled":
        raise KmsError("KMSInvalidStateException", f"{key.arn} is {key.key_state}.")


def _params(self) -> dict:
    try:
        return json.loads(self.body or "{}")
    except ValueError as e:
        raise KmsError("SerializationException", f"request body is not JSON: {e}") from None


def _sign(self) -> str:
    p = _params(self)
    key_id = p.get("KeyId")
    alg = p.get("SigningAlgorithm")
    message_type = p.get("MessageType") or "RAW"
    try:
        message = base64.b64decode(p.get("Message") or "", validate=True)
    except ValueError:
        raise KmsError("SerializationException", "Message is not valid base64") from None
    if not key_id or not alg:
        raise KmsError("ValidationException", "KeyId and SigningAlgorithm are required")
    if not 1 <= len(message) <= MAX_RAW_MESSAGE:
        raise KmsError(
            "ValidationException",
            "1 validation error detected: Value at 'message' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_RAW_MESSAGE} and greater than or equal to 1",
        )
    if message_type not in ("RAW", "DIGEST"):
        raise KmsError(
            "ValidationException",
            f"1 validation error detected: Value '{message_type}' at 'messageType' failed to "
            "satisfy constraint: Member must satisfy enum value set: [RAW, DIGEST, EXTERNAL_MU]",
        )
    self._validate_key_id(key_id)  # moto's NotFoundException for unknown ids and aliases
    key = self.kms_backend.describe_key(key_id)
    _check_state(key)
    if key.key_usage != "SIGN_VERIFY":
        raise KmsError(
            "InvalidKeyUsageException",
            f"{key.arn} key usage is {key.key_usage} which is not valid for Sign.",
        )
    if alg not in KEY_SPEC_ALGS.get(key.key_spec, []):
        raise KmsError(
            "InvalidKeyUsageException",
            f"Algorithm {alg} is incompatible with key spec {key.key_spec}.",
        )
    priv = key.private_key.private_key
    if alg == "ED25519_SHA_512":
        if message_type != "RAW":
            raise KmsError("ValidationException", "ED25519_SHA_512 requires MessageType RAW.")
        signature = priv.sign(message)
    elif alg == "ED25519_PH_SHA_512":
        raise KmsError(
            "UnsupportedOperationException",
            "ED25519_PH_SHA_512 is not implemented by pkjwt's KMS double",
        )
    else:
        h = hash_of(alg)
        if message_type == "DIGEST":
            if len(message) != h.digest_size:
                raise KmsError(
                    "ValidationException",
                    f"Digest is invalid length for algorithm {alg}.",
                )
            digest = message
        else:
            hasher = hashes.Hash(h())
            hasher.update(message)
            digest = hasher.finalize()
        pre = asym_utils.Prehashed(h())
        if alg.startswith("ECDSA_"):
            signature = priv.sign(digest, ec.ECDSA(pre))
        elif alg.startswith("RSASSA_PSS_"):
            pad = padding.PSS(mgf=padding.MGF1(h()), salt_length=h.digest_size)
            signature = priv.sign(digest, pad, pre)
        else:
            signature = priv.sign(digest, padding.PKCS1v15(), pre)
    return json.dumps(
        {
            "KeyId": key.arn,
            "Signature": base64.b64encode(signature).decode("ascii"),
            "SigningAlgorithm": alg,
        }
    )


def _get_public_key(self) -> str:
    p = _params(self)
    key_id = p.get("KeyId")
    if not key_id:
        raise KmsError("ValidationException", "KeyId is required")
    self._validate_key_id(key_id)
    key = self.kms_backend.describe_key(key_id)
    _check_state(key)
    if key.key_spec == "SYMMETRIC_DEFAULT" or key.key_spec.startswith("HMAC_"):
        raise KmsError(
            "UnsupportedOperationException",
            f"{key.arn} key usage is {key.key_usage} and key spec {key.key_spec}: "
            "GetPublicKey requires an asymmetric KMS key.",
        )
    return json.dumps(
        {
            "KeyId": key.arn,
            "KeySpec": key.key_spec,
            "CustomerMasterKeySpec": key.key_spec,
            "KeyUsage": key.key_usage,
            "PublicKey": base64.b64encode(key.private_key.public_key()).decode("ascii"),
            "SigningAlgorithms": key.signing_algorithms,
        }
    )


kms_responses.KmsResponse.sign = _sign
kms_responses.KmsResponse.get_public_key = _get_public_key


# --- fault injection and call counting ---------------------------------------------------------


class Faults:
    """Fault rules and call counters shared by the server's threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rules: list[dict] = []
        self.calls: dict[tuple[str, str | None], int] = {}

    def reset(self) -> None:
        with self.lock:
            self.rules.clear()
            self.calls.clear()

    def add(self, rules: list[dict]) -> None:
        for r in rules:
            if not isinstance(r, dict) or not isinstance(r.get("operation"), str):
                raise ValueError(f"a rule needs an \"operation\": {r!r}")
        with self.lock:
            for r in rules:
                self.rules.append(dict(r, times=int(r.get("times", 1))))

    def record(self, op: str, key_id: str | None) -> dict | None:
        """Counts the call and takes the first matching rule (consuming one of its ``times``)."""
        with self.lock:
            self.calls[(op, key_id)] = self.calls.get((op, key_id), 0) + 1
            for r in self.rules:
                if r["operation"] != op:
                    continue
                if "key_id" in r and r["key_id"] != key_id:
                    continue
                if r["times"] == 0:
                    continue
                if r["times"] > 0:
                    r["times"] -= 1
                return dict(r)
        return None

    def counts(self, key_id: str | None) -> dict[str, int]:
        out: dict[str, int] = {}
        with self.lock:
            for (op, k), n in self.calls.items():
                if key_id is None or k == key_id:
                    out[op] = out.get(op, 0) + n
        return out


class Double:
    """WSGI middleware in front of moto's app."""

    def __init__(self, app) -> None:
        self.app = app
        self.faults = Faults()

    def _json(self, start_response, status: str, obj, extra=()):
        body = json.dumps(obj).encode()
        headers = [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("Content-Length", str(len(body))),
            ("x-amzn-RequestId", str(uuid.uuid4())),
            *extra,
        ]
        start_response(status, headers)
        return [body]

    def _control(self, environ, start_response, path: str):
        method = environ.get("REQUEST_METHOD")
        try:
            if path == "/_pkjwt/faults" and method == "POST":
                self.faults.add(json.loads(self._body(environ) or b"{}").get("rules", []))
                return self._json(start_response, "200 OK", {"ok": True})
            if path == "/_pkjwt/calls" and method == "GET":
                q = parse_qs(environ.get("QUERY_STRING", ""))
                key = q.get("key_id", [None])[0]
                return self._json(start_response, "200 OK", self.faults.counts(key))
            if path == "/_pkjwt/reset" and method == "POST":
                self.faults.reset()
                return self._json(start_response, "200 OK", {"ok": True})
        except (ValueError, TypeError) as e:
            return self._json(start_response, "400 Bad Request", {"error": str(e)})
        return self._json(start_response, "404 Not Found", {"error": f"no control endpoint {method} {path}"})

    @staticmethod
    def _body(environ) -> bytes:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        return body

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_pkjwt/"):
            return self._control(environ, start_response, path)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        op = target.rsplit(".", 1)[-1] if target.startswith("TrentService.") else None
        if op is None:
            return self.app(environ, start_response)
        body = self._body(environ)
        try:
            params = json.loads(body or b"{}")
            # CreateAlias/UpdateAlias/DeleteAlias name no KeyId: match and count them by alias.
            key_id = params.get("KeyId") or params.get("AliasName")
        except ValueError:
            key_id = None
        rule = self.faults.record(op, key_id)
        if rule is not None:
            if rule.get("delay_ms"):
                time.sleep(int(rule["delay_ms"]) / 1000.0)
            if rule.get("type"):
                status = int(rule.get("status", 400))
                reason = {400: "Bad Request", 500: "Internal Server Error", 503: "Service Unavailable"}
                message = str(rule.get("message", "")).replace("{key_id}", str(key_id))
                return self._json(
                    start_response,
                    f"{status} {reason.get(status, 'Error')}",
                    {"__type": rule["type"], "message": message},
                )

        def with_request_id(status, headers, exc_info=None):
            if not any(h.lower() == "x-amzn-requestid" for h, _ in headers):
                headers = list(headers) + [("x-amzn-RequestId", str(uuid.uuid4()))]
            return start_response(status, headers, exc_info)

        drop = rule.get("drop_fields") if rule is not None else None
        if not drop:
            return self.app(environ, with_request_id)
        # Answer without some fields, e.g. what stock moto sends (no KeySpec in GetPublicKey).
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda _data: None

        body = b"".join(self.app(environ, capture))
        try:
            obj = json.loads(body)
            for field in drop:
                obj.pop(field, None)
            body = json.dumps(obj).encode()
        except ValueError:
            pass
        headers = [(h, v) for h, v in captured["headers"] if h.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        with_request_id(captured["status"], headers)
        return [body]


def make_app():
    """moto's dispatcher wrapped in the double's middleware."""
    from moto.server import DomainDispatcherApplication, create_backend_app

    return Double(DomainDispatcherApplication(create_backend_app))


def _watch_stdin() -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


def main(argv=None) -> None:
    from werkzeug.serving import make_server

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--no-stdin-watch", action="store_true", help="keep running when stdin closes")
    args = ap.parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        ap.error("the double only listens on loopback")
    server = make_server(args.host, args.port, make_app(), threaded=True)
    print(f"READY {server.server_port}", flush=True)
    if not args.no_stdin_watch:
        threading.Thread(target=_watch_stdin, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
