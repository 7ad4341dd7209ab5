#!/usr/bin/env bash
# Deploys Cedarflow to one AWS account and region with the AWS CLI and Docker, and prints the URL.
#
#   deploy/aws/deploy.sh --public-url https://mlflow.example.com \
#       --certificate-arn arn:aws:acm:eu-west-1:123456789012:certificate/... \
#       --domain-prefix example-mlflow [--hosted-zone-id Z123...] [options]
#
# Stacks, in order (each `aws cloudformation deploy`, so running it again updates in place):
#   NAME-replica-bucket  replica-bucket.yaml in --replica-region (only with --replica-region)
#   NAME-network         network.yaml (skipped with --vpc-id/--subnet-ids)
#   NAME-data            data.yaml: the global table and the artifact bucket (kept on delete);
#                        with --data-from-replica (a failover to the second region) none: the
#                        table's replica and NAME-replica-bucket of this region are used
#   NAME-identity        identity.yaml: Cognito user pool and app clients (pool kept on delete)
#   NAME-registry        registry.yaml: the ECR repository
#   (image)              docker build deploy/container/Dockerfile, docker push to the repository
#   (table check)        cedarflow table check: the table matches the schema the code expects
#   NAME-service         service.yaml: ECS Fargate behind an Application Load Balancer
#
# Run `deploy/aws/deploy.sh --help` for every option. Teardown: deploy/aws/teardown.sh.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

NAME=cedarflow
REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
PUBLIC_URL=""
CERTIFICATE_ARN=""
DOMAIN_PREFIX=""
HOSTED_ZONE_ID=""
REPLICA_REGION=""
DATA_FROM_REPLICA=false
VPC_ID=""
SUBNET_IDS=""
ASSIGN_PUBLIC_IP=""
IMAGE_TAG=""
ARCH=X86_64
PRINCIPAL_CLAIM=sub
ADMIN_GROUP=admins
MIN_TASKS=2
MAX_TASKS=6
ALLOWED_CIDR=0.0.0.0/0
FEDERATION_ARGS=()
CEDARFLOW="${CEDARFLOW:-}"

usage() {
  cat <<'EOF'
Usage: deploy/aws/deploy.sh --public-url URL --certificate-arn ARN --domain-prefix PREFIX [options]

Required:
  --public-url URL          https://HOST users open; HOST must be covered by the certificate
  --certificate-arn ARN     ACM certificate for HOST, in the deployment region
  --domain-prefix PREFIX    Cognito hosted sign-in: https://PREFIX.auth.REGION.amazoncognito.com

Options:
  --region REGION           deployment region (default: AWS_REGION, then the CLI's default)
  --name NAME               deployment name, prefix of every stack (default: cedarflow)
  --hosted-zone-id ID       Route 53 zone of HOST: an alias record to the load balancer is made
  --replica-region REGION   second region: table replica and replicated artifact bucket
  --data-from-replica       deploy in the second region on the data replicated there (the
                            table's replica, NAME-replica-bucket): a region failover
  --vpc-id ID --subnet-ids A,B
                            use an existing VPC (subnets in two availability zones) instead of
                            the network stack
  --assign-public-ip ENABLED|DISABLED
                            with --vpc-id: DISABLED for private subnets with NAT or endpoints
  --image-tag TAG           deploy an image already in the repository (no docker build)
  --arch X86_64|ARM64       image and task architecture (default: X86_64)
  --principal-claim CLAIM   sub (default), username or email: see deploy/RUNBOOK.md
  --admin-group GROUP       the administrators' Cognito group (default: admins)
  --min-tasks N --max-tasks N
                            autoscaling bounds (default: 2 and 6; at least 2)
  --allowed-cidr CIDR       who may reach the load balancer (default: 0.0.0.0/0)
  --federation-param KEY=VALUE
                            passed to identity.yaml, e.g. FederationType=SAML,
                            SamlMetadataUrl=https://... (repeatable)
  --cedarflow PATH          the cedarflow command for `table check` (default: .venv/bin/cedarflow
                            of this checkout, else cedarflow on PATH)
EOF
}

die() { echo "deploy.sh: $*" >&2; exit 1; }
step() { echo; echo "== $*"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --public-url) PUBLIC_URL="${2:?}"; shift 2 ;;
    --certificate-arn) CERTIFICATE_ARN="${2:?}"; shift 2 ;;
    --domain-prefix) DOMAIN_PREFIX="${2:?}"; shift 2 ;;
    --region) REGION="${2:?}"; shift 2 ;;
    --name) NAME="${2:?}"; shift 2 ;;
    --hosted-zone-id) HOSTED_ZONE_ID="${2:?}"; shift 2 ;;
    --replica-region) REPLICA_REGION="${2:?}"; shift 2 ;;
    --data-from-replica) DATA_FROM_REPLICA=true; shift ;;
    --vpc-id) VPC_ID="${2:?}"; shift 2 ;;
    --subnet-ids) SUBNET_IDS="${2:?}"; shift 2 ;;
    --assign-public-ip) ASSIGN_PUBLIC_IP="${2:?}"; shift 2 ;;
    --image-tag) IMAGE_TAG="${2:?}"; shift 2 ;;
    --arch) ARCH="${2:?}"; shift 2 ;;
    --principal-claim) PRINCIPAL_CLAIM="${2:?}"; shift 2 ;;
    --admin-group) ADMIN_GROUP="${2:?}"; shift 2 ;;
    --min-tasks) MIN_TASKS="${2:?}"; shift 2 ;;
    --max-tasks) MAX_TASKS="${2:?}"; shift 2 ;;
    --allowed-cidr) ALLOWED_CIDR="${2:?}"; shift 2 ;;
    --federation-param) FEDERATION_ARGS+=("${2:?}"); shift 2 ;;
    --cedarflow) CEDARFLOW="${2:?}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done

[[ -n "$PUBLIC_URL" && -n "$CERTIFICATE_ARN" && -n "$DOMAIN_PREFIX" ]] \
  || { usage >&2; die "--public-url, --certificate-arn and --domain-prefix are required"; }
[[ "$PUBLIC_URL" =~ ^https://[a-z0-9.-]+$ ]] || die "--public-url must be https://HOST (no path, no trailing slash)"
[[ -z "$VPC_ID" || -n "$SUBNET_IDS" ]] || die "--vpc-id needs --subnet-ids"
[[ "$DATA_FROM_REPLICA" == false || -z "$REPLICA_REGION" ]] \
  || die "--data-from-replica deploys in the replica region: leave out --replica-region"

command -v aws >/dev/null || die "the AWS CLI (aws) is needed: https://docs.aws.amazon.com/cli/"
REGION="${REGION:-$(aws configure get region || true)}"
[[ -n "$REGION" ]] || die "no region: give --region or set AWS_REGION"
if [[ -z "$IMAGE_TAG" ]]; then
  command -v docker >/dev/null || die "docker is needed to build the image (or give --image-tag)"
fi
if [[ -z "$CEDARFLOW" ]]; then
  if [[ -x "$ROOT/.venv/bin/cedarflow" ]]; then CEDARFLOW="$ROOT/.venv/bin/cedarflow"
  else CEDARFLOW="$(command -v cedarflow || true)"; fi
fi
[[ -n "$CEDARFLOW" ]] || die "cedarflow is needed for the table check: run 'make setup' or give --cedarflow"

ACCOUNT="$(aws sts get-caller-identity --query Account --output text)"
echo "Deploying '$NAME' to account $ACCOUNT, region $REGION."

# deploy_stack STACK TEMPLATE [KEY=VALUE...]: create or update, wait, fail loudly.
deploy_stack() {
  local stack="$1" template="$2"; shift 2
  step "stack $stack ($(basename "$template"))"
  aws cloudformation deploy --region "${STACK_REGION:-$REGION}" \
    --stack-name "$stack" --template-file "$template" \
    --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
    --parameter-overrides "$@"
}

# output STACK KEY [REGION]: one output value of a deployed stack.
output() {
  aws cloudformation describe-stacks --region "${3:-$REGION}" --stack-name "$1" \
    --query "Stacks[0].Outputs[?OutputKey=='$2'].OutputValue | [0]" --output text
}

if [[ -n "$REPLICA_REGION" ]]; then
  STACK_REGION="$REPLICA_REGION" deploy_stack "$NAME-replica-bucket" "$HERE/replica-bucket.yaml" \
    "Name=$NAME"
fi

if [[ -z "$VPC_ID" ]]; then
  deploy_stack "$NAME-network" "$HERE/network.yaml" "Name=$NAME"
  VPC_ID="$(output "$NAME-network" VpcId)"
  SUBNET_IDS="$(output "$NAME-network" SubnetIds)"
  ASSIGN_PUBLIC_IP="${ASSIGN_PUBLIC_IP:-$(output "$NAME-network" AssignPublicIp)}"
fi
ASSIGN_PUBLIC_IP="${ASSIGN_PUBLIC_IP:-ENABLED}"

if [[ "$DATA_FROM_REPLICA" == true ]]; then
  # The global table has the same name in every region; the bucket is this region's replica.
  TABLE_NAME="$NAME"
  ARTIFACT_BUCKET="$(output "$NAME-replica-bucket" ArtifactBucketName)"
  ARTIFACT_PREFIX=mlflow
else
  deploy_stack "$NAME-data" "$HERE/data.yaml" "Name=$NAME" "ReplicaRegion=$REPLICA_REGION"
  TABLE_NAME="$(output "$NAME-data" TableName)"
  ARTIFACT_BUCKET="$(output "$NAME-data" ArtifactBucketName)"
  ARTIFACT_PREFIX="$(output "$NAME-data" ArtifactPrefix)"
fi
deploy_stack "$NAME-identity" "$HERE/identity.yaml" "Name=$NAME" "PublicUrl=$PUBLIC_URL" \
  "DomainPrefix=$DOMAIN_PREFIX" "AdminGroup=$ADMIN_GROUP" ${FEDERATION_ARGS[@]+"${FEDERATION_ARGS[@]}"}
deploy_stack "$NAME-registry" "$HERE/registry.yaml" "Name=$NAME"

REPOSITORY_URI="$(output "$NAME-registry" RepositoryUri)"
if [[ -z "$IMAGE_TAG" ]]; then
  step "image"
  # One immutable tag per commit; a checkout with uncommitted changes gets a unique suffix.
  IMAGE_TAG="$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo build)"
  if [[ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]]; then
    IMAGE_TAG="$IMAGE_TAG-dirty-$(date -u +%Y%m%d%H%M%S)"
  fi
  PLATFORM=linux/amd64; [[ "$ARCH" == ARM64 ]] && PLATFORM=linux/arm64
  if aws ecr describe-images --region "$REGION" --repository-name "$NAME" \
       --image-ids "imageTag=$IMAGE_TAG" >/dev/null 2>&1; then
    echo "$REPOSITORY_URI:$IMAGE_TAG is already in the repository."
  else
    aws ecr get-login-password --region "$REGION" \
      | docker login --username AWS --password-stdin "${REPOSITORY_URI%%/*}"
    docker build --platform "$PLATFORM" -f "$ROOT/deploy/container/Dockerfile" \
      -t "$REPOSITORY_URI:$IMAGE_TAG" "$ROOT"
    docker push "$REPOSITORY_URI:$IMAGE_TAG"
  fi
fi

step "table check"
# CloudFormation created the table; `check` compares it with the schema the code uses and
# changes nothing (`table create` is for tables made outside CloudFormation).
TABLE_URI="dynamodb://$REGION/$TABLE_NAME"
"$CEDARFLOW" table check --table "$TABLE_URI"

deploy_stack "$NAME-service" "$HERE/service.yaml" \
  "Name=$NAME" "PublicUrl=$PUBLIC_URL" "CertificateArn=$CERTIFICATE_ARN" \
  "HostedZoneId=$HOSTED_ZONE_ID" "AllowedCidr=$ALLOWED_CIDR" \
  "ImageRepositoryName=$NAME" "ImageTag=$IMAGE_TAG" "CpuArchitecture=$ARCH" \
  "VpcId=$VPC_ID" "SubnetIds=$SUBNET_IDS" "AssignPublicIp=$ASSIGN_PUBLIC_IP" \
  "TableName=$TABLE_NAME" "ArtifactBucketName=$ARTIFACT_BUCKET" "ArtifactPrefix=$ARTIFACT_PREFIX" \
  "Issuer=$(output "$NAME-identity" Issuer)" \
  "JwksUrl=$(output "$NAME-identity" JwksUrl)" \
  "UiClientId=$(output "$NAME-identity" UiClientId)" \
  "UiClientSecretArn=$(output "$NAME-identity" UiClientSecretArn)" \
  "CliClientId=$(output "$NAME-identity" CliClientId)" \
  "CliLoopbackPort=$(output "$NAME-identity" CliLoopbackPort)" \
  "MachineClientId=$(output "$NAME-identity" MachineClientId)" \
  "AdminGroup=$(output "$NAME-identity" AdminGroup)" \
  "PrincipalClaim=$PRINCIPAL_CLAIM" "MinTasks=$MIN_TASKS" "MaxTasks=$MAX_TASKS"

URL="$(output "$NAME-service" Url)"
ALB="$(output "$NAME-service" LoadBalancerDnsName)"
POOL="$(output "$NAME-identity" UserPoolId)"
cat <<EOF

Cedarflow is deployed.
  URL:             $URL
  Load balancer:   $ALB
  Image:           $REPOSITORY_URI:$IMAGE_TAG
  Table:           $TABLE_URI
  User pool:       $POOL (hosted sign-in: $(output "$NAME-identity" HostedSignInUrl))
EOF
if [[ -z "$HOSTED_ZONE_ID" ]]; then
  echo "  DNS:             point ${PUBLIC_URL#https://} at $ALB (CNAME or alias)"
fi
cat <<EOF

First administrator:
  aws cognito-idp admin-create-user --region $REGION --user-pool-id $POOL \\
      --username alice --user-attributes Name=email,Value=alice@example.com Name=email_verified,Value=true
  aws cognito-idp admin-add-user-to-group --region $REGION --user-pool-id $POOL \\
      --username alice --group-name $ADMIN_GROUP

Then, on a laptop:
  cedarflow login --url $URL
  export MLFLOW_TRACKING_URI=$URL MLFLOW_TRACKING_AUTH=cedarflow
EOF
