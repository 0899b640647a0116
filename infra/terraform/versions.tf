# The S3 buckets of hm_recs (raw drops, model artefacts, recommendation exports) and the IAM role its pods
# assume through the EKS cluster's OIDC provider (IRSA). docs/deploy.md: `terraform init && terraform apply`.
terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
  }
}
