# pkjwt Google Cloud KMS client key: inputs.

variable "project" {
  description = "Project that holds the key ring."
  type        = string
}

variable "location" {
  description = "Cloud KMS location of the key ring (global, europe-west1, us, ...)."
  type        = string
  default     = "global"
}

variable "key_ring" {
  description = "Key ring name. Key rings can never be deleted: reuse one per environment."
  type        = string
}

variable "create_key_ring" {
  description = "Create the key ring (true), or use an existing one of that name (false)."
  type        = bool
  default     = true
}

variable "key_name" {
  description = "Crypto key name (the client's key)."
  type        = string
}

variable "algorithm" {
  description = "The key version's algorithm; pkjwt signs with its one JWS algorithm (EC_SIGN_P256_SHA256 = ES256)."
  type        = string
  default     = "EC_SIGN_P256_SHA256"
  validation {
    condition = contains([
      "EC_SIGN_P256_SHA256", "EC_SIGN_P384_SHA384", "EC_SIGN_SECP256K1_SHA256", "EC_SIGN_ED25519",
      "RSA_SIGN_PSS_2048_SHA256", "RSA_SIGN_PSS_3072_SHA256", "RSA_SIGN_PSS_4096_SHA256",
      "RSA_SIGN_PSS_4096_SHA512", "RSA_SIGN_PKCS1_2048_SHA256", "RSA_SIGN_PKCS1_3072_SHA256",
      "RSA_SIGN_PKCS1_4096_SHA256", "RSA_SIGN_PKCS1_4096_SHA512",
    ], var.algorithm)
    error_message = "algorithm must be a Cloud KMS signing algorithm pkjwt maps to a JWS algorithm (docs/gcp-kms.md)."
  }
}

variable "protection_level" {
  description = "HSM (Cloud HSM, the default) or SOFTWARE."
  type        = string
  default     = "HSM"
  validation {
    condition     = contains(["HSM", "SOFTWARE"], var.protection_level)
    error_message = "protection_level must be HSM or SOFTWARE."
  }
}

variable "destroy_scheduled_duration" {
  description = "How long a version stays DESTROY_SCHEDULED before it is destroyed (Cloud KMS allows 24h to 120 days)."
  type        = string
  default     = "2592000s" # 30 days
}

variable "signer_members" {
  description = "Principals that sign with the key (service accounts of the clients): roles/cloudkms.signerVerifier on this key only."
  type        = list(string)
  default     = []
}

variable "public_key_viewer_members" {
  description = "Principals that only publish the public key (pkjwt serve / pubkey): roles/cloudkms.publicKeyViewer on this key only."
  type        = list(string)
  default     = []
}

variable "labels" {
  description = "Extra labels on the key."
  type        = map(string)
  default     = {}
}
