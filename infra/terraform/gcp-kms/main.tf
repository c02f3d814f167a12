# pkjwt Google Cloud KMS client key: an ASYMMETRIC_SIGN crypto key (its version 1 is what pkjwt
# signs with), optionally its key ring, and IAM bindings on the key alone: signers get
# roles/cloudkms.signerVerifier, publishers roles/cloudkms.publicKeyViewer.

resource "google_kms_key_ring" "this" {
  count    = var.create_key_ring ? 1 : 0
  project  = var.project
  name     = var.key_ring
  location = var.location
}

data "google_kms_key_ring" "existing" {
  count    = var.create_key_ring ? 0 : 1
  project  = var.project
  name     = var.key_ring
  location = var.location
}

locals {
  key_ring_id = var.create_key_ring ? google_kms_key_ring.this[0].id : data.google_kms_key_ring.existing[0].id
}

resource "google_kms_crypto_key" "this" {
  name     = var.key_name
  key_ring = local.key_ring_id
  purpose  = "ASYMMETRIC_SIGN"
  # Asymmetric keys have no automatic rotation and no primary version: rotating is a new
  # version (or key) and a new key URI (README).
  version_template {
    algorithm        = var.algorithm
    protection_level = var.protection_level
  }
  destroy_scheduled_duration = var.destroy_scheduled_duration
  labels                     = merge({ "created-by" = "pkjwt" }, var.labels)

  lifecycle {
    # Destroying the key ends every client that signs with it.
    prevent_destroy = true
  }
}

data "google_kms_crypto_key_version" "this" {
  crypto_key = google_kms_crypto_key.this.id
  version    = 1
}

resource "google_kms_crypto_key_iam_member" "signer" {
  for_each      = toset(var.signer_members)
  crypto_key_id = google_kms_crypto_key.this.id
  role          = "roles/cloudkms.signerVerifier"
  member        = each.value
}

resource "google_kms_crypto_key_iam_member" "public_key_viewer" {
  for_each      = toset(var.public_key_viewer_members)
  crypto_key_id = google_kms_crypto_key.this.id
  role          = "roles/cloudkms.publicKeyViewer"
  member        = each.value
}
