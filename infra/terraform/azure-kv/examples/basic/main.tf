# A P-256 key with a self-signed certificate for a Microsoft Entra ID client, signed with by the
# managed identity of the workload. Unvalidated (no terraform on pkjwt's build machines).

provider "azurerm" {
  features {}
}

variable "key_vault_id" {
  type = string
}

variable "workload_principal_id" {
  type = string
}

module "pkjwt_key" {
  source              = "../.."
  key_vault_id        = var.key_vault_id
  name                = "pkjwt-entra-client"
  key_type            = "EC"
  curve               = "P-256"
  certificate_subject = "CN=pkjwt-entra-client"
  signer_principal_ids = [var.workload_principal_id]
}

output "key_uri" {
  value = module.pkjwt_key.key_uri
}
