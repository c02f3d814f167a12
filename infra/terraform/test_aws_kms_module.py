"""Static checks of infra/terraform/aws-kms (Terraform cannot run on the build machines).

Parses the module and its example with python-hcl2 and checks what pkjwt's AWS KMS backend
relies on: an asymmetric SIGN_VERIFY key, a key spec the backend can sign with (default
ECC_NIST_P256), and signer permissions that are exactly kms:Sign and kms:GetPublicKey, with the
kms:SigningAlgorithm condition only where it exists (Sign). Run:
``.venv/bin/python -m pytest infra/terraform`` (the Rust test `python_suites` runs it too).
"""

from __future__ import annotations

import os
import re

import pytest
from hcl_files import load

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE = os.path.join(HERE, "aws-kms")
ROOT = os.path.dirname(os.path.dirname(HERE))
SIGNER_ACTIONS = {"kms:Sign", "kms:GetPublicKey"}


@pytest.fixture(scope="module")
def module():
    return load(MODULE)


def block(tf, kind, type_, name):
    for item in tf.get(kind, []):
        if type_ in item and name in item[type_]:
            return item[type_][name]
    raise AssertionError(f"{kind} {type_}.{name} not found")


def variable(tf, name):
    for item in tf["variable"]:
        if name in item:
            return item[name]
    raise AssertionError(f"variable {name} not found")


def statements(doc):
    """Every statement of an aws_iam_policy_document, static or dynamic."""
    out = list(doc.get("statement", []))
    for dyn in doc.get("dynamic", []):
        if "statement" in dyn:
            out.extend(dyn["statement"]["content"])
    return out


def conditions(stmt):
    out = list(stmt.get("condition", []))
    for dyn in stmt.get("dynamic", []):
        if "condition" in dyn:
            out.extend(dyn["condition"]["content"])
    return out


def backend_key_specs():
    """The key specs crates/pkjwt-aws-kms/src/spec.rs maps to JWS algorithms."""
    with open(os.path.join(ROOT, "crates/pkjwt-aws-kms/src/spec.rs")) as f:
        src = f.read()
    fn = src[src.index("fn algorithms_for_spec"): src.index("fn spec_matches_key")]
    return set(re.findall(r'"((?:ECC|RSA)_[A-Z0-9_]+)"', fn))


def test_key_is_asymmetric_sign_verify(module):
    key = block(module, "resource", "aws_kms_key", "this")
    assert key["key_usage"] == "SIGN_VERIFY"
    assert key["customer_master_key_spec"] == "${var.key_spec}"
    assert key["enable_key_rotation"] is False  # KMS cannot rotate asymmetric keys
    assert key["deletion_window_in_days"] == "${var.deletion_window_in_days}"
    assert key["policy"] == "${data.aws_iam_policy_document.key.json}"


def test_key_spec_default_and_allowed_values_match_the_backend(module):
    var = variable(module, "key_spec")
    assert var["default"] == "ECC_NIST_P256"
    condition = var["validation"][0]["condition"]
    # python-hcl2 renders the expression without the quotes: contains([A, B, ...], var.key_spec)
    listed = re.search(r"contains\(\[([^\]]*)\],\s*var\.key_spec\)", condition)
    assert listed, condition
    allowed = {item.strip().strip('"') for item in listed.group(1).split(",")}
    assert allowed == backend_key_specs(), (allowed, backend_key_specs())


def test_deletion_window_is_bounded(module):
    var = variable(module, "deletion_window_in_days")
    assert var["default"] == 30
    cond = var["validation"][0]["condition"]
    assert ">= 7" in cond and "<= 30" in cond


def test_iam_policy_grants_exactly_sign_and_get_public_key(module):
    doc = block(module, "data", "aws_iam_policy_document", "signer")
    stmts = statements(doc)
    actions = {a for s in stmts for a in s["actions"]}
    assert actions == SIGNER_ACTIONS
    for s in stmts:
        assert s.get("effect", "Allow") == "Allow"
        assert s["resources"] == ["${aws_kms_key.this.arn}"], "scoped to the one key"
        assert not any("*" in a for a in s["actions"])
    policy = block(module, "resource", "aws_iam_policy", "signer")
    assert policy["policy"] == "${data.aws_iam_policy_document.signer.json}"


def test_key_policy_signer_statements(module):
    doc = block(module, "data", "aws_iam_policy_document", "key")
    signer = [s for s in statements(doc) if any(p["identifiers"] == "${var.signer_principal_arns}" for p in s.get("principals", []))]
    assert {a for s in signer for a in s["actions"]} == SIGNER_ACTIONS
    admin = [s for s in statements(doc) if s.get("sid") == "KeyAdministration"][0]
    assert not {"kms:Sign", "kms:*"} & set(module["locals"][0]["admin_actions"]), "administrators cannot sign"
    assert admin["actions"] == "${local.admin_actions}"


@pytest.mark.parametrize("doc_name", ["key", "signer"])
def test_signing_algorithm_condition_only_on_sign(module, doc_name):
    doc = block(module, "data", "aws_iam_policy_document", doc_name)
    for s in statements(doc):
        conds = conditions(s)
        variables = {c["variable"] for c in conds}
        if s["actions"] == ["kms:Sign"]:
            assert variables == {"kms:SigningAlgorithm"}
            assert conds[0]["values"] == "${var.signing_algorithms}"
        else:
            # kms:SigningAlgorithm is absent from GetPublicKey requests: conditioning on it
            # there would deny GetPublicKey.
            assert "kms:SigningAlgorithm" not in variables, s


def test_outputs(module):
    outputs = {k: v for item in module["output"] for k, v in item.items()}
    assert {"key_arn", "alias_name", "public_key_pem", "pkjwt_key_uri"} <= set(outputs)
    assert outputs["public_key_pem"]["value"] == "${data.aws_kms_public_key.this.public_key_pem}"
    uri = outputs["pkjwt_key_uri"]["value"]
    assert uri.startswith("awskms:key-id=${aws_kms_alias.this.name};region=")
    pub = block(module, "data", "aws_kms_public_key", "this")
    assert pub["key_id"] == "${aws_kms_key.this.arn}"
    alias = block(module, "resource", "aws_kms_alias", "this")
    assert alias["name"] == "${local.alias}"
    assert module["locals"][0]["alias"] == "alias/${var.alias_name}"


def test_example_uses_the_module():
    example = load(os.path.join(MODULE, "examples", "basic"))
    mod = example["module"][0]["client_key"]
    assert mod["source"] == "../.."
    assert mod["key_spec"] == "ECC_NIST_P256"
    assert mod["signing_algorithms"] == ["ECDSA_SHA_256"]
    module_vars = {k for item in load(MODULE)["variable"] for k in item}
    passed = set(mod) - {"source"}
    assert passed <= module_vars, passed - module_vars
    outputs = {k for item in example["output"] for k in item}
    assert "pkjwt_key_uri" in outputs
