# pkjwt AWS KMS client key: an asymmetric SIGN_VERIFY key, its alias, a key policy and an IAM
# policy that grant the signers exactly kms:Sign and kms:GetPublicKey.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  alias          = "alias/${var.alias_name}"
  account_root   = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
  admin_actions = [
    "kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy", "kms:ListResourceTags",
    "kms:TagResource", "kms:UntagResource", "kms:UpdateKeyDescription", "kms:EnableKey",
    "kms:DisableKey", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion", "kms:CreateAlias",
    "kms:UpdateAlias", "kms:DeleteAlias", "kms:ListAliases", "kms:ListGrants", "kms:RevokeGrant",
  ]
}

resource "aws_kms_key" "this" {
  description              = var.description
  key_usage                = "SIGN_VERIFY"
  customer_master_key_spec = var.key_spec
  deletion_window_in_days  = var.deletion_window_in_days
  # KMS never rotates asymmetric keys: rotation is a new key and an alias swap (README).
  enable_key_rotation = false
  policy              = data.aws_iam_policy_document.key.json
  tags                = var.tags
}

resource "aws_kms_alias" "this" {
  name          = local.alias
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "key" {
  # Default: the statement of KMS's default key policy, which lets IAM policies in this
  # account govern the key (the IAM policy below then suffices for the signers).
  dynamic "statement" {
    for_each = length(var.key_administrator_arns) == 0 ? [1] : []
    content {
      sid       = "EnableIamPolicies"
      effect    = "Allow"
      actions   = ["kms:*"]
      resources = ["*"]
      principals {
        type        = "AWS"
        identifiers = [local.account_root]
      }
    }
  }

  # Explicit administrators manage the key but cannot use it.
  dynamic "statement" {
    for_each = length(var.key_administrator_arns) > 0 ? [1] : []
    content {
      sid       = "KeyAdministration"
      effect    = "Allow"
      actions   = local.admin_actions
      resources = ["*"]
      principals {
        type        = "AWS"
        identifiers = var.key_administrator_arns
      }
    }
  }

  dynamic "statement" {
    for_each = length(var.signer_principal_arns) > 0 ? [1] : []
    content {
      sid       = "PkjwtReadPublicKey"
      effect    = "Allow"
      actions   = ["kms:GetPublicKey"]
      resources = ["*"]
      principals {
        type        = "AWS"
        identifiers = var.signer_principal_arns
      }
    }
  }

  dynamic "statement" {
    for_each = length(var.signer_principal_arns) > 0 ? [1] : []
    content {
      sid       = "PkjwtSign"
      effect    = "Allow"
      actions   = ["kms:Sign"]
      resources = ["*"]
      principals {
        type        = "AWS"
        identifiers = var.signer_principal_arns
      }
      # kms:SigningAlgorithm exists only in Sign requests: on the GetPublicKey statement it
      # would deny GetPublicKey.
      dynamic "condition" {
        for_each = length(var.signing_algorithms) > 0 ? [1] : []
        content {
          test     = "StringEquals"
          variable = "kms:SigningAlgorithm"
          values   = var.signing_algorithms
        }
      }
    }
  }
}

data "aws_iam_policy_document" "signer" {
  statement {
    sid       = "PkjwtReadPublicKey"
    effect    = "Allow"
    actions   = ["kms:GetPublicKey"]
    resources = [aws_kms_key.this.arn]
  }

  statement {
    sid       = "PkjwtSign"
    effect    = "Allow"
    actions   = ["kms:Sign"]
    resources = [aws_kms_key.this.arn]
    dynamic "condition" {
      for_each = length(var.signing_algorithms) > 0 ? [1] : []
      content {
        test     = "StringEquals"
        variable = "kms:SigningAlgorithm"
        values   = var.signing_algorithms
      }
    }
  }
}

resource "aws_iam_policy" "signer" {
  count       = var.create_iam_policy ? 1 : 0
  name        = "pkjwt-sign-${replace(var.alias_name, "/", "-")}"
  description = "kms:Sign and kms:GetPublicKey on ${local.alias} (pkjwt private_key_jwt client key)"
  policy      = data.aws_iam_policy_document.signer.json
  tags        = var.tags
}

resource "aws_iam_role_policy_attachment" "signer" {
  for_each   = var.create_iam_policy ? toset(var.attach_to_role_names) : toset([])
  role       = each.value
  policy_arn = aws_iam_policy.signer[0].arn
}

data "aws_kms_public_key" "this" {
  key_id = aws_kms_key.this.arn
}
