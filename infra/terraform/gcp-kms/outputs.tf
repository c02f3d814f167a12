# pkjwt Google Cloud KMS client key: outputs.

output "key_uri" {
  description = "The key URI for pkjwt (--key / PKJWT_KEY)."
  value       = "gcpkms:${google_kms_crypto_key.this.id}/cryptoKeyVersions/1"
}

output "crypto_key_id" {
  description = "The crypto key's resource name."
  value       = google_kms_crypto_key.this.id
}

output "public_key_pem" {
  description = "The public key of version 1 (PEM), as getPublicKey returns it."
  value       = data.google_kms_crypto_key_version.this.public_key[0].pem
}
