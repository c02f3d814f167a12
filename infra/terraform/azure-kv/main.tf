# A signing key for pkjwt in Azure Key Vault, optionally as the key of a self-signed Key Vault
# certificate (for x5c / x5t#S256), and role assignments scoped to that key and certificate only.
#
# Unvalidated: terraform is not installed on pkjwt's build machines. infra/terraform/
# test_azure_kv_module.py checks its structure statically with python-hcl2.

locals {
  is_ec    = startswith(var.key_type, "EC")
  with_crt = var.certificate_subject != null
}

# A plain key: sign and verify only (pkjwt never needs encrypt, wrap or export).
resource "azurerm_key_vault_key" "this" {
  count        = local.with_crt ? 0 : 1
  name         = var.name
  key_vault_id = var.key_vault_id
  key_type     = var.key_type
  curve        = local.is_ec ? var.curve : null
  key_size     = local.is_ec ? null : var.key_size
  key_opts     = ["sign", "verify"]
  tags = {
    "created-by" = "terraform/pkjwt"
  }
}

# A self-signed certificate whose key pkjwt signs with. The key is not exportable and is kept
# on renewal (reuse_key), so the key URI and the published kid survive a certificate renewal.
resource "azurerm_key_vault_certificate" "this" {
  count        = local.with_crt ? 1 : 0
  name         = var.name
  key_vault_id = var.key_vault_id

  certificate_policy {
    issuer_parameters {
      name = "Self"
    }
    key_properties {
      exportable = false
      key_type   = var.key_type
      curve      = local.is_ec ? var.curve : null
      key_size   = local.is_ec ? null : var.key_size
      reuse_key  = true
    }
    secret_properties {
      content_type = "application/x-pem-file"
    }
    x509_certificate_properties {
      subject            = var.certificate_subject
      key_usage          = ["digitalSignature"]
      validity_in_months = var.certificate_validity_months
    }
  }
  tags = {
    "created-by" = "terraform/pkjwt"
  }
}

locals {
  key_versionless_id = local.with_crt ? replace(azurerm_key_vault_certificate.this[0].versionless_id, "/certificates/", "/keys/") : azurerm_key_vault_key.this[0].versionless_id
  key_scope          = local.with_crt ? replace(azurerm_key_vault_certificate.this[0].resource_manager_versionless_id, "/certificates/", "/keys/") : azurerm_key_vault_key.this[0].resource_versionless_id
}

# keys/get + keys/sign on this key only.
resource "azurerm_role_assignment" "crypto_user" {
  for_each             = toset(var.signer_principal_ids)
  scope                = local.key_scope
  role_definition_name = "Key Vault Crypto User"
  principal_id         = each.value
}

# certificates/get on this certificate only, for x5c / x5t#S256.
resource "azurerm_role_assignment" "certificate_user" {
  for_each             = local.with_crt ? toset(var.signer_principal_ids) : toset([])
  scope                = azurerm_key_vault_certificate.this[0].resource_manager_versionless_id
  role_definition_name = "Key Vault Certificate User"
  principal_id         = each.value
}
