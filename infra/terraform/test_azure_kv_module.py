"""Static checks of infra/terraform/azure-kv (Terraform cannot run on the build machines).

Parses the module and its example with python-hcl2 and checks what pkjwt's Azure Key Vault
backend relies on: key operations sign and verify only, key types and curves the backend signs
with (crates/pkjwt-azure-kv/src/signer.rs), a non-exportable certificate key kept on renewal, the
roles Key Vault Crypto User / Key Vault Certificate User scoped to the key and the certificate (not
the vault), and an `azurekv:` output. Run: ``.venv/bin/python -m pytest infra/terraform``.
"""

from __future__ import annotations

import os
import re

import pytest
from hcl_files import load

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE = os.path.join(HERE, "azure-kv")
ROOT = os.path.dirname(os.path.dirname(HERE))


@pytest.fixture(scope="module")
def module():
    return load(MODULE)


def resource(tf, type_, name):
    for item in tf.get("resource", []):
        if type_ in item and name in item[type_]:
            return item[type_][name]
    raise AssertionError(f"resource {type_}.{name} not found")


def variable(tf, name):
    for item in tf["variable"]:
        if name in item:
            return item[name]
    raise AssertionError(f"variable {name} not found")


def backend_accepts():
    """kty and crv values the backend's parse_key_bundle accepts."""
    with open(os.path.join(ROOT, "crates/pkjwt-azure-kv/src/signer.rs")) as f:
        src = f.read()
    fn = src[src.index("fn parse_key_bundle"): src.index("async fn read_chain")]
    ktys = set(re.findall(r'"((?:EC|RSA)(?:-HSM)?)"', fn))
    curves = set(re.findall(r'"(P-\d+K?)" =>', fn))
    return ktys, curves


def test_plain_key_signs_and_verifies_only(module):
    key = resource(module, "azurerm_key_vault_key", "this")
    assert key["key_opts"] == ["sign", "verify"]


def test_key_types_and_curves_are_ones_the_backend_signs_with(module):
    ktys, curves = backend_accepts()
    assert ktys == {"EC", "EC-HSM", "RSA", "RSA-HSM"}
    for name, allowed in (("key_type", ktys), ("curve", curves)):
        var = variable(module, name)
        assert var["default"] in allowed
        cond = var["validation"][0]["condition"]
        # python-hcl2 renders the list without quotes: contains([EC, EC-HSM], var.key_type).
        inner = re.search(r"contains\(\[([^\]]*)\]", cond).group(1)
        listed = {x.strip().strip('"') for x in inner.split(",")}
        assert listed and listed <= allowed, (name, listed, allowed)
    sizes = set(map(int, re.findall(r"\d{4}", variable(module, "key_size")["validation"][0]["condition"])))
    assert sizes == {2048, 3072, 4096}


def test_certificate_key_is_not_exportable_and_survives_renewal(module):
    cert = resource(module, "azurerm_key_vault_certificate", "this")
    policy = cert["certificate_policy"][0]
    props = policy["key_properties"][0]
    assert props["exportable"] is False and props["reuse_key"] is True
    assert policy["issuer_parameters"][0]["name"] == "Self"
    assert policy["x509_certificate_properties"][0]["key_usage"] == ["digitalSignature"]


def test_roles_are_the_documented_ones_scoped_to_key_and_certificate(module):
    crypto = resource(module, "azurerm_role_assignment", "crypto_user")
    cert = resource(module, "azurerm_role_assignment", "certificate_user")
    assert crypto["role_definition_name"] == "Key Vault Crypto User"
    assert cert["role_definition_name"] == "Key Vault Certificate User"
    assert "key_scope" in crypto["scope"]
    assert "azurerm_key_vault_certificate.this" in cert["scope"]
    for r in (crypto, cert):
        assert "key_vault_id" not in r["scope"], "a role on the whole vault is broader than needed"
    with open(os.path.join(ROOT, "docs/azure-kv.md")) as f:
        doc = f.read()
    assert "Key Vault Crypto User" in doc and "Key Vault Certificate User" in doc


def test_output_is_an_azurekv_uri(module):
    outputs = {k: v for item in module["output"] for k, v in item.items()}
    assert outputs["key_uri"]["value"].startswith("azurekv:")


def test_example_parses_and_uses_the_module():
    example = load(os.path.join(MODULE, "examples", "basic"))
    mod = example["module"][0]["pkjwt_key"]
    assert mod["source"] == "../.."
    assert mod["certificate_subject"].startswith("CN=")
