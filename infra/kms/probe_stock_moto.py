"""Probes *stock* moto (no pkjwt patches) for the KMS behaviours pkjwt depends on, and prints
what it does next to what the KMS API reference says. Evidence for docs/aws-kms.md; not a test.

Run: ``.venv/bin/python infra/kms/probe_stock_moto.py`` (starts and stops its own moto_server
on 127.0.0.1).
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time

import boto3
import botocore.config
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        kms = boto3.client(
            "kms",
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=botocore.config.Config(retries={"total_max_attempts": 1}),
        )
        for _ in range(100):
            try:
                kms.list_keys()
                break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.1)
        probe(kms)
    finally:
        server.terminate()
        server.wait(timeout=10)


def row(what: str, moto: str, aws: str) -> None:
    print(f"| {what} | {moto} | {aws} |")


def probe(kms) -> None:
    print("| behaviour | stock moto 5.2.5 (observed) | KMS API reference |")
    print("| --- | --- | --- |")
    msg = b"header.payload"
    key = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["KeyId"]
    pk = serialization.load_der_public_key(kms.get_public_key(KeyId=key)["PublicKey"])
    sig = kms.sign(KeyId=key, Message=hashlib.sha256(msg).digest(), MessageType="DIGEST",
                   SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    try:
        pk.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
        result = "signs the digest"
    except InvalidSignature:
        try:
            pk.verify(sig, hashlib.sha256(msg).digest(), ec.ECDSA(hashes.SHA256()))
            result = "hashes the digest again (signature over SHA-256(digest))"
        except InvalidSignature:
            result = "signature verifies neither way"
    row("Sign ECDSA_SHA_256, MessageType=DIGEST", result, "signs the digest")

    r = kms.get_public_key(KeyId=key)
    row("GetPublicKey KeySpec", "present" if "KeySpec" in r else "absent (only CustomerMasterKeySpec)", "present")
    row("GetPublicKey KeyId", r["KeyId"] if not r["KeyId"].startswith("arn:") else "key ARN", "key ARN")
    row("x-amzn-RequestId on success", "present" if r["ResponseMetadata"].get("RequestId") else "absent", "present")

    rsa_key = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="RSA_2048")["KeyMetadata"]["KeyId"]
    rsa_pk = serialization.load_der_public_key(kms.get_public_key(KeyId=rsa_key)["PublicKey"])
    sig = kms.sign(KeyId=rsa_key, Message=msg, MessageType="RAW", SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
    try:
        rsa_pk.verify(sig, msg, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
        result = "salt 32 (hash length)"
    except InvalidSignature:
        result = "salt is not 32 bytes (maximum salt); PS256 verifiers reject it"
    row("Sign RSASSA_PSS_SHA_256 salt", result, "salt = hash length")

    def code(call):
        try:
            call()
            return "succeeds"
        except ClientError as e:
            return e.response["Error"]["Code"]

    kms.disable_key(KeyId=key)
    row("Sign with a Disabled key", code(lambda: kms.sign(KeyId=key, Message=msg, SigningAlgorithm="ECDSA_SHA_256")), "DisabledException")
    row("GetPublicKey with a Disabled key", code(lambda: kms.get_public_key(KeyId=key)), "DisabledException")
    kms.enable_key(KeyId=key)
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    row("Sign with a PendingDeletion key", code(lambda: kms.sign(KeyId=key, Message=msg, SigningAlgorithm="ECDSA_SHA_256")), "KMSInvalidStateException")
    key2 = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["KeyId"]
    row("Sign with an algorithm the key lacks", code(lambda: kms.sign(KeyId=key2, Message=msg, SigningAlgorithm="ECDSA_SHA_384")), "InvalidKeyUsageException")
    row("Sign DIGEST of the wrong length", code(lambda: kms.sign(KeyId=key2, Message=b"x" * 31, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")), "ValidationException")
    row("Sign RAW over 4096 bytes", code(lambda: kms.sign(KeyId=key2, Message=b"x" * 5000, SigningAlgorithm="ECDSA_SHA_256")), "ValidationException")
    sym = kms.create_key()["KeyMetadata"]["KeyId"]
    def sym_gpk():
        r = kms.get_public_key(KeyId=sym)
        return f"answers a public key (KeyUsage {r.get('KeyUsage', 'absent')}, spec {r.get('CustomerMasterKeySpec')})"
    try:
        result = sym_gpk()
    except ClientError as e:
        result = e.response["Error"]["Code"]
    row("GetPublicKey on a symmetric key", result, "UnsupportedOperationException")
    row("CreateKey ECC_NIST_EDWARDS25519", code(lambda: kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_EDWARDS25519")), "creates an Ed25519 key")


if __name__ == "__main__":
    main()
