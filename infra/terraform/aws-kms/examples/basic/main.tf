# Example root module: a P-256 client key for a workload role, ES256 only.
#
#   terraform init && terraform plan -var workload_role_name=payments-api && terraform apply ...

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "region" {
  description = "AWS region of the key."
  type        = string
  default     = "eu-west-1"
}

variable "workload_role_name" {
  description = "Name of the IAM role the client runs as (EC2 instance profile, ECS task role, EKS IRSA role, Lambda role)."
  type        = string
}

data "aws_iam_role" "workload" {
  name = var.workload_role_name
}

module "client_key" {
  source = "../.."

  alias_name              = "payments-client-2026"
  key_spec                = "ECC_NIST_P256"
  deletion_window_in_days = 30
  signer_principal_arns   = [data.aws_iam_role.workload.arn]
  signing_algorithms      = ["ECDSA_SHA_256"]
  attach_to_role_names    = [data.aws_iam_role.workload.name]
  tags = {
    purpose = "private_key_jwt"
  }
}

output "pkjwt_key_uri" {
  description = "Give this to pkjwt: pkjwt assert --key \"$(terraform output -raw pkjwt_key_uri)\" ..."
  value       = module.client_key.pkjwt_key_uri
}

output "public_key_pem" {
  description = "Public key to register with the authorization server (or publish as JWK via pkjwt pubkey)."
  value       = module.client_key.public_key_pem
}

output "key_arn" {
  description = "KMS key ARN."
  value       = module.client_key.key_arn
}
