output "key_uri" {
  description = "The pkjwt key URI (current version, pinned by pkjwt when it opens the key)."
  value       = "azurekv:${local.key_versionless_id}"
}

output "key_id" {
  description = "The key identifier without version."
  value       = local.key_versionless_id
}

output "certificate_id" {
  description = "The certificate identifier without version (null for a plain key)."
  value       = local.with_crt ? azurerm_key_vault_certificate.this[0].versionless_id : null
}
