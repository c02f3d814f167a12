# pkjwt AWS KMS client key: inputs.

variable "alias_name" {
  description = "Alias of the key, without the alias/ prefix (for example payments-client-2026)."
  type        = string
  validation {
    condition     = can(regex("^[a-zA-Z0-9/_-]{1,250}$", var.alias_name)) && !startswith(var.alias_name, "aws/") && !startswith(var.alias_name, "alias/")
    error_message = "alias_name: 1-250 of a-z A-Z 0-9 / _ -, without the alias/ prefix, not under aws/."
  }
}

variable "key_spec" {
  description = "KMS key spec; selects the JWS algorithm (ECC_NIST_P256 = ES256, RSA_* = PS256/RS256..., ECC_NIST_EDWARDS25519 = EdDSA)."
  type        = string
  default     = "ECC_NIST_P256"
  validation {
    condition = contains([
      "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1",
      "RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_EDWARDS25519",
    ], var.key_spec)
    error_message = "key_spec must be one pkjwt can sign JWS with: ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521, ECC_SECG_P256K1, RSA_2048, RSA_3072, RSA_4096, ECC_NIST_EDWARDS25519."
  }
}

variable "deletion_window_in_days" {
  description = "Waiting period before KMS deletes the key after terraform destroy (7-30 days; the key can be recovered meanwhile)."
  type        = number
  default     = 30
  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30."
  }
}

variable "signer_principal_arns" {
  description = "IAM principals (role ARNs) that may sign with the key: they get kms:Sign and kms:GetPublicKey, nothing else."
  type        = list(string)
  default     = []
}

variable "signing_algorithms" {
  description = "If non-empty, kms:Sign is allowed only with these KMS signing algorithms (condition kms:SigningAlgorithm), e.g. [\"ECDSA_SHA_256\"] for ES256 or [\"RSASSA_PSS_SHA_256\"] for PS256."
  type        = list(string)
  default     = []
}

variable "key_administrator_arns" {
  description = "Principals that administer the key (administrative actions only, no kms:Sign). Empty: the account root gets kms:*, the statement of the KMS default key policy, which lets IAM policies in this account govern the key."
  type        = list(string)
  default     = []
}

variable "create_iam_policy" {
  description = "Also create an IAM policy with the same two permissions, to attach to the workload's role."
  type        = bool
  default     = true
}

variable "attach_to_role_names" {
  description = "IAM role names to attach the created IAM policy to."
  type        = list(string)
  default     = []
}

variable "description" {
  description = "Key description."
  type        = string
  default     = "pkjwt private_key_jwt client-authentication key"
}

variable "tags" {
  description = "Tags for the key and the IAM policy."
  type        = map(string)
  default     = {}
}
