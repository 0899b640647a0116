# The role of every Dagster pod (service account var.namespace/var.service_account), least privilege per bucket:
#   raw        read only (the retailer's drops are never changed by the pipeline)
#   artefacts  read and write (models, decisions, Dagster step logs)
#   exports    read and write (the weekly recommendation files)
# No delete anywhere: versioning and lifecycle rules retire old objects.

data "aws_iam_policy_document" "assume_from_service_account" {
  statement {
    sid     = "IrsaServiceAccount"
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${var.service_account}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "code_location" {
  name                 = "${var.name_prefix}-code-location"
  description          = "hm_recs Dagster pods (IRSA): raw read, artefacts and exports read/write"
  assume_role_policy   = data.aws_iam_policy_document.assume_from_service_account.json
  max_session_duration = 3600
  tags                 = var.tags
}

data "aws_iam_policy_document" "code_location" {
  statement {
    sid       = "ListTheThreeBuckets"
    effect    = "Allow"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.this["raw"].arn, aws_s3_bucket.this["artefacts"].arn, aws_s3_bucket.this["exports"].arn]
  }

  statement {
    sid       = "ReadRaw"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this["raw"].arn}/*"]
  }

  statement {
    sid       = "ReadWriteArtefacts"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.this["artefacts"].arn}/*"]
  }

  statement {
    sid       = "ReadWriteExports"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.this["exports"].arn}/*"]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]

    content {
      sid       = "UseBucketKey"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "code_location" {
  name   = "${var.name_prefix}-buckets"
  role   = aws_iam_role.code_location.id
  policy = data.aws_iam_policy_document.code_location.json
}
