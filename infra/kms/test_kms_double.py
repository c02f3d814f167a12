"""Tests of pkjwt's KMS double against the behaviour the KMS API reference documents.

Each test names the reference behaviour it checks. Signatures are verified with `cryptography`
(an implementation independent of moto's signing path) against the public key GetPublicKey
returns. Run: ``.venv/bin/python -m pytest infra/kms`` (infra/kms/test.sh does it).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

HERE = os.path.dirname(os.path.abspath(__file__))
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


@pytest.fixture(scope="session")
def endpoint():
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "kms_double.py"), "--port", "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("READY "), f"double did not start: {line!r}"
    yield f"http://127.0.0.1:{line.split()[1]}"
    proc.stdin.close()  # the double exits when its stdin closes
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


@pytest.fixture()
def kms(endpoint):
    return boto3.client(
        "kms",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


def control(endpoint, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(endpoint + path, data=data, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def new_key(kms, spec, usage="SIGN_VERIFY"):
    return kms.create_key(KeyUsage=usage, KeySpec=spec)["KeyMetadata"]["Arn"]


def public_key(kms, key):
    return serialization.load_der_public_key(kms.get_public_key(KeyId=key)["PublicKey"])


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


@pytest.mark.parametrize(
    "spec,alg,h",
    [
        ("ECC_NIST_P256", "ECDSA_SHA_256", hashes.SHA256),
        ("ECC_SECG_P256K1", "ECDSA_SHA_256", hashes.SHA256),
        ("ECC_NIST_P384", "ECDSA_SHA_384", hashes.SHA384),
        ("ECC_NIST_P521", "ECDSA_SHA_512", hashes.SHA512),
    ],
)
def test_ecdsa_digest_signs_the_digest(kms, spec, alg, h):
    """API_Sign: MessageType=DIGEST -> KMS skips the hashing step (moto hashes again)."""
    key = new_key(kms, spec)
    message = b"header.payload"
    digest = hashlib.new(h.name, message).digest()
    sig = kms.sign(KeyId=key, Message=digest, MessageType="DIGEST", SigningAlgorithm=alg)["Signature"]
    public_key(kms, key).verify(sig, message, ec.ECDSA(h()))
    # and RAW still hashes the message itself
    sig = kms.sign(KeyId=key, Message=message, MessageType="RAW", SigningAlgorithm=alg)["Signature"]
    public_key(kms, key).verify(sig, message, ec.ECDSA(h()))


@pytest.mark.parametrize("bits,h", [(256, hashes.SHA256), (384, hashes.SHA384), (512, hashes.SHA512)])
def test_rsa_pss_salt_is_hash_length(kms, bits, h):
    """KMS crypto details: RSASSA-PSS salt length = hash length (JOSE PS* requires it)."""
    key = new_key(kms, "RSA_2048")
    message = b"header.payload"
    digest = hashlib.new(h.name, message).digest()
    sig = kms.sign(
        KeyId=key, Message=digest, MessageType="DIGEST", SigningAlgorithm=f"RSASSA_PSS_SHA_{bits}"
    )["Signature"]
    pk = public_key(kms, key)
    pk.verify(sig, message, padding.PSS(mgf=padding.MGF1(h()), salt_length=h.digest_size), h())
    max_salt = pk.key_size // 8 - h.digest_size - 2
    with pytest.raises(InvalidSignature):  # the maximum salt (moto's choice) is not what was used
        pk.verify(sig, message, padding.PSS(mgf=padding.MGF1(h()), salt_length=max_salt), h())


def test_rsa_pkcs1_digest(kms):
    key = new_key(kms, "RSA_2048")
    message = b"header.payload"
    sig = kms.sign(
        KeyId=key,
        Message=hashlib.sha256(message).digest(),
        MessageType="DIGEST",
        SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256",
    )["Signature"]
    public_key(kms, key).verify(sig, message, padding.PKCS1v15(), hashes.SHA256())


def test_ed25519_raw_signs_message_and_refuses_digest(kms):
    """API_Sign: ED25519_SHA_512 requires MessageType RAW."""
    key = new_key(kms, "ECC_NIST_EDWARDS25519")
    message = b"header.payload"
    sig = kms.sign(KeyId=key, Message=message, MessageType="RAW", SigningAlgorithm="ED25519_SHA_512")["Signature"]
    assert len(sig) == 64
    public_key(kms, key).verify(sig, message)
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId=key, Message=hashlib.sha512(message).digest(), MessageType="DIGEST", SigningAlgorithm="ED25519_SHA_512")
    assert error_code(e) == "ValidationException"


def test_digest_of_wrong_length_is_validation_error(kms):
    key = new_key(kms, "ECC_NIST_P256")
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId=key, Message=b"x" * 31, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    assert error_code(e) == "ValidationException"


def test_raw_over_4096_bytes_is_validation_error(kms):
    key = new_key(kms, "ECC_NIST_P256")
    kms.sign(KeyId=key, Message=b"x" * 4096, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId=key, Message=b"x" * 4097, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")
    assert error_code(e) == "ValidationException"


def test_disabled_key_is_disabled_exception(kms):
    key = new_key(kms, "ECC_NIST_P256")
    kms.disable_key(KeyId=key.split("/")[-1])
    for call in (
        lambda: kms.get_public_key(KeyId=key),
        lambda: kms.sign(KeyId=key, Message=b"x" * 32, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256"),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "DisabledException"


def test_pending_deletion_is_invalid_state(kms):
    key = new_key(kms, "ECC_NIST_P256")
    kms.create_alias(AliasName="alias/doomed", TargetKeyId=key)
    kms.schedule_key_deletion(KeyId=key.split("/")[-1], PendingWindowInDays=7)
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId="alias/doomed", Message=b"x" * 32, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    assert error_code(e) == "KMSInvalidStateException"


def test_wrong_algorithm_is_invalid_key_usage(kms):
    key = new_key(kms, "ECC_NIST_P256")
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId=key, Message=b"x" * 48, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_384")
    assert error_code(e) == "InvalidKeyUsageException"


def test_symmetric_key(kms):
    key = new_key(kms, "SYMMETRIC_DEFAULT", usage="ENCRYPT_DECRYPT")
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId=key, Message=b"x" * 32, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    assert error_code(e) == "InvalidKeyUsageException"
    with pytest.raises(ClientError) as e:
        kms.get_public_key(KeyId=key)
    assert error_code(e) == "UnsupportedOperationException"


def test_unknown_alias_and_key_are_not_found(kms):
    for key in ("alias/nope", "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"):
        with pytest.raises(ClientError) as e:
            kms.get_public_key(KeyId=key)
        assert error_code(e) == "NotFoundException"


def test_get_public_key_has_key_spec_and_arn(kms):
    key = new_key(kms, "ECC_NIST_P384")
    r = kms.get_public_key(KeyId=key)
    assert r["KeySpec"] == "ECC_NIST_P384"
    assert r["KeyUsage"] == "SIGN_VERIFY"
    assert r["KeyId"] == key
    assert r["SigningAlgorithms"] == ["ECDSA_SHA_384"]
    assert isinstance(serialization.load_der_public_key(r["PublicKey"]), ec.EllipticCurvePublicKey)


def test_faults_counts_and_request_ids(kms, endpoint):
    key = new_key(kms, "ECC_NIST_P256")
    control(endpoint, "/_pkjwt/faults", {"rules": [
        {"operation": "Sign", "key_id": key, "times": 2, "type": "ThrottlingException", "message": "Rate exceeded"},
        {"operation": "Sign", "key_id": key, "times": 1, "status": 500, "type": "KMSInternalException", "message": "boom"},
    ]})
    codes = []
    for _ in range(4):
        try:
            r = kms.sign(KeyId=key, Message=b"x" * 32, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
            codes.append("ok")
            assert r["ResponseMetadata"]["RequestId"]
        except ClientError as e:
            codes.append((e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]))
            assert e.response["ResponseMetadata"]["RequestId"]
    assert codes == [("ThrottlingException", 400), ("ThrottlingException", 400), ("KMSInternalException", 500), "ok"]
    assert control(endpoint, "/_pkjwt/calls?key_id=" + key) == {"Sign": 4}


def test_delay_fault(kms, endpoint):
    key = new_key(kms, "ECC_NIST_P256")
    control(endpoint, "/_pkjwt/faults", {"rules": [{"operation": "GetPublicKey", "key_id": key, "delay_ms": 700}]})
    start = time.monotonic()
    kms.get_public_key(KeyId=key)
    assert time.monotonic() - start >= 0.7
    start = time.monotonic()
    kms.get_public_key(KeyId=key)
    assert time.monotonic() - start < 0.7


def test_drop_fields_fault(kms, endpoint):
    key = new_key(kms, "ECC_NIST_P256")
    control(endpoint, "/_pkjwt/faults", {"rules": [{"operation": "GetPublicKey", "key_id": key, "drop_fields": ["KeySpec"]}]})
    r = kms.get_public_key(KeyId=key)
    assert "KeySpec" not in r and r["CustomerMasterKeySpec"] == "ECC_NIST_P256"
    assert kms.get_public_key(KeyId=key)["KeySpec"] == "ECC_NIST_P256"
