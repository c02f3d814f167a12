"""Static checks of infra/terraform/gcp-kms (Terraform cannot run on the build machines).

Parses the module and its example with python-hcl2 and checks what pkjwt's Cloud KMS backend
relies on: an ASYMMETRIC_SIGN key, an algorithm list equal to the backend's own
(crates/pkjwt-gcp-kms/src/spec.rs), HSM by default, exactly roles/cloudkms.signerVerifier and
roles/cloudkms.publicKeyViewer bound on the key (never the project or the ring), and a key URI
output of the form the backend parses. Run: ``.venv/bin/python -m pytest infra/terraform``.
"""

from __future__ import annotations

import os
import re

import pytest
from hcl_files import load

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE = os.path.join(HERE, "gcp-kms")
ROOT = os.path.dirname(os.path.dirname(HERE))


@pytest.fixture(scope="module")
def module():
    return load(MODULE)


def blocks(tf, kind, type_):
    return {name: body for item in tf.get(kind, []) if type_ in item for name, body in item[type_].items()}


def variable(tf, name):
    for item in tf["variable"]:
        if name in item:
            return item[name]
    raise AssertionError(f"variable {name} not found")


def backend_algorithms():
    with open(os.path.join(ROOT, "crates/pkjwt-gcp-kms/src/spec.rs")) as f:
        src = f.read()
    table = src[src.index("pub(crate) const ALGORITHMS"): src.index("RSA_SHA256_SIZES")]
    return set(re.findall(r'alg\("([A-Z0-9_]+)"', table))


def test_key_is_asymmetric_sign(module):
    key = blocks(module, "resource", "google_kms_crypto_key")["this"]
    assert key["purpose"] == "ASYMMETRIC_SIGN"
    tmpl = key["version_template"][0]
    assert tmpl["algorithm"] == "${var.algorithm}"
    assert tmpl["protection_level"] == "${var.protection_level}"
    assert key["lifecycle"][0]["prevent_destroy"] is True
    assert "rotation_period" not in key  # asymmetric keys cannot rotate automatically


def test_algorithms_match_the_backend(module):
    var = variable(module, "algorithm")
    assert var["default"] == "EC_SIGN_P256_SHA256"
    cond = var["validation"][0]["condition"]
    listed = re.search(r"contains\(\[([^\]]*)\],\s*var\.algorithm\)", cond, re.S)
    assert listed, cond
    allowed = {i.strip().strip('"') for i in listed.group(1).split(",") if i.strip()}
    assert allowed == backend_algorithms() and len(allowed) == 12, allowed ^ backend_algorithms()


def test_hsm_by_default(module):
    assert variable(module, "protection_level")["default"] == "HSM"


def test_roles_are_bound_on_the_key_only(module):
    members = blocks(module, "resource", "google_kms_crypto_key_iam_member")
    assert {m["role"] for m in members.values()} == {
        "roles/cloudkms.signerVerifier", "roles/cloudkms.publicKeyViewer"}
    for m in members.values():
        assert m["crypto_key_id"] == "${google_kms_crypto_key.this.id}"
    for kind in ("google_project_iam_member", "google_project_iam_binding",
                 "google_kms_key_ring_iam_member", "google_kms_key_ring_iam_binding",
                 "google_kms_crypto_key_iam_binding", "google_kms_crypto_key_iam_policy"):
        assert not blocks(module, "resource", kind), f"{kind}: broader than the one key, or authoritative"


def test_key_uri_output_is_what_the_backend_parses(module):
    out = {k: v for item in module["output"] for k, v in item.items()}
    value = out["key_uri"]["value"]
    assert value == "gcpkms:${google_kms_crypto_key.this.id}/cryptoKeyVersions/1"
    # google_kms_crypto_key.id is projects/P/locations/L/keyRings/R/cryptoKeys/K.
    sample = value.replace("${google_kms_crypto_key.this.id}",
                           "projects/p/locations/global/keyRings/r/cryptoKeys/k")
    assert re.fullmatch(r"gcpkms:projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+/cryptoKeyVersions/1", sample)


def test_example_uses_the_module():
    ex = load(os.path.join(MODULE, "examples", "basic"))
    mod = ex["module"][0]["pkjwt_client_key"]
    assert mod["source"] == "../.."
    assert all(m.startswith("serviceAccount:") for m in mod["signer_members"])
