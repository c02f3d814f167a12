# pkjwt AWS KMS client key: outputs.

output "key_arn" {
  description = "ARN of the KMS key."
  value       = aws_kms_key.this.arn
}

output "key_id" {
  description = "Id of the KMS key."
  value       = aws_kms_key.this.key_id
}

output "alias_name" {
  description = "The alias (alias/NAME)."
  value       = aws_kms_alias.this.name
}

output "alias_arn" {
  description = "ARN of the alias."
  value       = aws_kms_alias.this.arn
}

output "public_key_pem" {
  description = "The public key (SubjectPublicKeyInfo PEM); `pkjwt pubkey --format jwk` gives its JWK."
  value       = data.aws_kms_public_key.this.public_key_pem
}

output "pkjwt_key_uri" {
  description = "Key reference for pkjwt (--key / PKJWT_KEY), by alias: follows an alias swap at the next open."
  value       = "awskms:key-id=${aws_kms_alias.this.name};region=${data.aws_region.current.name}"
}

output "pkjwt_key_uri_pinned" {
  description = "Key reference pinned to this key's ARN (does not follow an alias swap)."
  value       = aws_kms_key.this.arn
}

output "iam_policy_arn" {
  description = "ARN of the IAM policy granting kms:Sign and kms:GetPublicKey on the key (null if not created)."
  value       = var.create_iam_policy ? aws_iam_policy.signer[0].arn : null
}
