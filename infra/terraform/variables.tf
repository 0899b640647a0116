variable "name_prefix" {
  description = "Prefix of every bucket and role name."
  type        = string
  default     = "hm-recs"
}

variable "bucket_suffix" {
  description = "Suffix that makes the bucket names globally unique (the account id, say)."
  type        = string
}

variable "oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider (aws_iam_openid_connect_provider or the EKS module's output)."
  type        = string
}

variable "oidc_issuer" {
  description = "The cluster's OIDC issuer without https:// (oidc.eks.REGION.amazonaws.com/id/XXXX)."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace of the Dagster release (infra/helm/values.yaml)."
  type        = string
  default     = "hm-recs"
}

variable "service_account" {
  description = "Kubernetes service account of every Dagster pod (global.serviceAccountName in the values)."
  type        = string
  default     = "hm-recs"
}

variable "raw_noncurrent_days" {
  description = "Days an overwritten or deleted raw file is kept (versioning) before it expires."
  type        = number
  default     = 90
}

variable "artefacts_noncurrent_days" {
  description = "Days an overwritten model artefact version is kept."
  type        = number
  default     = 30
}

variable "compute_log_days" {
  description = "Days Dagster's step logs (artefacts bucket, prefix dagster/compute-logs/) are kept."
  type        = number
  default     = 30
}

variable "training_data_days" {
  description = "Days the week's stored two-tower training data (artefacts bucket, prefix training_data/) is kept; re-running an older week's two-tower steps rebuilds two_tower_data first."
  type        = number
  default     = 21
}

variable "exports_retention_days" {
  description = "Days a weekly recommendations export is kept before it expires."
  type        = number
  default     = 90
}

variable "kms_key_arn" {
  description = "KMS key for the buckets' default encryption; null: S3-managed keys (SSE-S3)."
  type        = string
  default     = null
}

variable "force_destroy" {
  description = "Let terraform destroy non-empty buckets (test environments only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
