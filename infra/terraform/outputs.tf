output "buckets" {
  description = "Bucket name per kind of data."
  value       = { for kind, bucket in aws_s3_bucket.this : kind => bucket.id }
}

output "code_location_role_arn" {
  description = "serviceAccount.annotations.\"eks.amazonaws.com/role-arn\" in infra/helm/values.yaml."
  value       = aws_iam_role.code_location.arn
}

output "environment" {
  description = "The code location's environment variables for these buckets (infra/helm/values.yaml, dagster_cloud.yaml)."
  value = {
    HM_RECS_SOURCE    = "s3://${aws_s3_bucket.this["raw"].id}/hm"
    HM_RECS_ARTEFACTS = "s3://${aws_s3_bucket.this["artefacts"].id}/hm_recs"
    HM_RECS_EXPORTS   = "s3://${aws_s3_bucket.this["exports"].id}/recommendations"
  }
}
