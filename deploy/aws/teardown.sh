#!/usr/bin/env bash
# Stops Cedarflow and removes what costs money by the hour, keeping every piece of data.
#
#   deploy/aws/teardown.sh [--region REGION] [--name NAME]
#
# Deletes NAME-service (tasks, load balancer, secrets, autoscaling) and NAME-network (VPC, when
# deploy.sh made it). Keeps, untouched: NAME-data (table and artifact bucket), NAME-identity
# (user pool, its users and app clients), NAME-registry (images), NAME-replica-bucket, and the
# service's log group. deploy/aws/deploy.sh with the same --name brings the service back on the
# same data, users and sign-in URLs.
set -euo pipefail

NAME=cedarflow
REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --region) REGION="${2:?}"; shift 2 ;;
    --name) NAME="${2:?}"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "teardown.sh: unknown option $1" >&2; exit 1 ;;
  esac
done

command -v aws >/dev/null || { echo "teardown.sh: the AWS CLI (aws) is needed" >&2; exit 1; }
REGION="${REGION:-$(aws configure get region || true)}"
[[ -n "$REGION" ]] || { echo "teardown.sh: no region: give --region or set AWS_REGION" >&2; exit 1; }

exists() {
  aws cloudformation describe-stacks --region "$REGION" --stack-name "$1" >/dev/null 2>&1
}

delete_stack() {
  if exists "$1"; then
    echo "== deleting $1"
    aws cloudformation delete-stack --region "$REGION" --stack-name "$1"
    aws cloudformation wait stack-delete-complete --region "$REGION" --stack-name "$1"
  else
    echo "== $1: not deployed"
  fi
}

# The service first: the network cannot go while tasks and the load balancer use it.
delete_stack "$NAME-service"
delete_stack "$NAME-network"

echo
echo "Stopped. Kept (no hourly cost; storage is billed as it grows):"
for stack in "$NAME-data" "$NAME-identity" "$NAME-registry"; do
  if exists "$stack"; then echo "  $stack"; fi
done
cat <<EOF
  the service's log group (audit lines), until its retention ends
Bring the service back with deploy/aws/deploy.sh --name $NAME (same options as before).
EOF
