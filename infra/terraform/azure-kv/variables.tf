variable "key_vault_id" {
  description = "Resource id of the Key Vault (RBAC authorization enabled) or Managed HSM that holds the key."
  type        = string
}

variable "name" {
  description = "Key name (and certificate name when certificate_subject is set): 1-127 characters of 0-9, a-z, A-Z and -."
  type        = string
  validation {
    condition     = can(regex("^[0-9A-Za-z-]{1,127}$", var.name))
    error_message = "name must be 1-127 characters of 0-9, a-z, A-Z and -."
  }
}

variable "key_type" {
  description = "EC or RSA (software-protected, any vault tier), EC-HSM or RSA-HSM (Premium vault or Managed HSM)."
  type        = string
  default     = "EC"
  validation {
    condition     = contains(["EC", "EC-HSM", "RSA", "RSA-HSM"], var.key_type)
    error_message = "key_type must be EC, EC-HSM, RSA or RSA-HSM (the types pkjwt signs with)."
  }
}

variable "curve" {
  description = "EC curve: P-256 (ES256, default), P-384 (ES384), P-521 (ES512) or P-256K (ES256K)."
  type        = string
  default     = "P-256"
  validation {
    condition     = contains(["P-256", "P-384", "P-521", "P-256K"], var.curve)
    error_message = "curve must be P-256, P-384, P-521 or P-256K."
  }
}

variable "key_size" {
  description = "RSA modulus size: 2048, 3072 or 4096."
  type        = number
  default     = 2048
  validation {
    condition     = contains([2048, 3072, 4096], var.key_size)
    error_message = "key_size must be 2048, 3072 or 4096."
  }
}

variable "certificate_subject" {
  description = "When set (e.g. \"CN=my-client\"), the key is made as the key of a self-signed Key Vault certificate of the same name, which pkjwt publishes as x5c / x5t#S256 (Microsoft Entra ID certificate credentials). null: a plain key."
  type        = string
  default     = null
}

variable "certificate_validity_months" {
  description = "Validity of the self-signed certificate."
  type        = number
  default     = 12
}

variable "signer_principal_ids" {
  description = "Object ids of the identities that sign with the key (managed identities, service principals): they get Key Vault Crypto User on the key, and Key Vault Certificate User on its certificate."
  type        = list(string)
  default     = []
}
