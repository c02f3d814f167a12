# A client key in Cloud HSM for one workload's service account.
module "pkjwt_client_key" {
  source = "../.."

  project        = "my-project"
  location       = "europe-west1"
  key_ring       = "pkjwt"
  key_name       = "payments-client"
  algorithm      = "EC_SIGN_P256_SHA256"
  signer_members = ["serviceAccount:payments@my-project.iam.gserviceaccount.com"]
}

output "key_uri" {
  value = module.pkjwt_client_key.key_uri
}
