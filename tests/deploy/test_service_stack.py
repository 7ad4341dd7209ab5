"""service.yaml: the task runs `cedarflow serve` as its contract says, with least privilege."""

from __future__ import annotations

import pytest
from deploy_support import (
    SERVE_FLAGS,
    SERVE_SECRETS,
    only_resource,
    serve_environment_variable,
    sub_text,
    template,
)
from role_actions import (
    dynamodb_actions_of_the_service,
    requests_sent_around_the_table_wrapper,
    s3_actions_of_mlflow,
)

from store.dynamo.schema import SCHEMA


@pytest.fixture(scope="module")
def service() -> dict:
    return template("service.yaml")


@pytest.fixture(scope="module")
def container(service) -> dict:
    task = only_resource(service, "AWS::ECS::TaskDefinition")["Properties"]
    (definition,) = task["ContainerDefinitions"]
    return definition


def statements(role: dict) -> list[dict]:
    return [
        s
        for policy in role["Properties"]["Policies"]
        for s in policy["PolicyDocument"]["Statement"]
    ]


def actions(statement: dict) -> set[str]:
    granted = statement["Action"]
    return {granted} if isinstance(granted, str) else set(granted)


def resources(statement: dict) -> list:
    granted = statement["Resource"]
    return granted if isinstance(granted, list) else [granted]


def environment(container: dict) -> dict:
    return {pair["Name"]: pair["Value"] for pair in container["Environment"]}


def test_task_role_may_send_exactly_the_stores_dynamodb_requests(service):
    (table,) = [s for s in statements(service["Resources"]["TaskRole"]) if s["Sid"] == "Table"]
    assert actions(table) == dynamodb_actions_of_the_service()
    arn = "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${TableName}"
    assert [sub_text(r) for r in resources(table)] == [
        arn,
        *(f"{arn}/index/{index.name}" for index in SCHEMA.indexes),
    ]


def test_store_reaches_dynamodb_only_through_the_table_wrapper():
    # What makes reading the operations from DynamoTable._call calls complete.
    assert requests_sent_around_the_table_wrapper() == []


def test_task_role_may_do_what_mlflows_s3_repository_does_under_the_prefix_only(service):
    granted = {
        s["Sid"]: s for s in statements(service["Resources"]["TaskRole"]) if s["Sid"] != "Table"
    }
    assert set().union(*(actions(s) for s in granted.values())) == s3_actions_of_mlflow()
    objects, listing = granted["ArtifactObjects"], granted["ListArtifacts"]
    assert actions(listing) == {"s3:ListBucket"}
    assert sub_text(objects["Resource"]).endswith(":s3:::${ArtifactBucketName}/${ArtifactPrefix}/*")
    assert sub_text(listing["Resource"]).endswith(":s3:::${ArtifactBucketName}")
    assert listing["Condition"] == {
        "StringLike": {"s3:prefix": [{"Ref": "ArtifactPrefix"}, {"Fn::Sub": "${ArtifactPrefix}/*"}]}
    }


def test_no_star_resource_but_where_aws_requires_it(service):
    for name in ("TaskRole", "ExecutionRole"):
        for statement in statements(service["Resources"][name]):
            assert statement["Effect"] == "Allow"
            assert not any(a.endswith("*") for a in actions(statement)), statement
            if "*" in resources(statement):
                # ecr:GetAuthorizationToken has no resource type: "*" is the only value AWS takes.
                assert actions(statement) == {"ecr:GetAuthorizationToken"}


def test_execution_role_reads_exactly_the_three_secrets(service, container):
    (read,) = [
        s for s in statements(service["Resources"]["ExecutionRole"]) if s["Sid"] == "ReadSecrets"
    ]
    assert sorted(map(str, resources(read))) == sorted(
        str(secret["ValueFrom"]) for secret in container["Secrets"]
    )


def test_environment_holds_only_what_serve_reads(container):
    contract = {serve_environment_variable(flag) for flag in SERVE_FLAGS}
    assert set(environment(container)) <= contract
    assert {secret["Name"] for secret in container["Secrets"]} == set(SERVE_SECRETS)
    assert not set(environment(container)) & set(SERVE_SECRETS)


def test_serve_gets_the_table_artifacts_and_identity_it_needs(container):
    env = environment(container)
    assert sub_text(env["CEDARFLOW_TABLE"]) == "dynamodb://${AWS::Region}/${TableName}"
    assert sub_text(env["CEDARFLOW_ARTIFACTS"]) == "s3://${ArtifactBucketName}/${ArtifactPrefix}"
    assert env["CEDARFLOW_ISSUER"] == {"Ref": "Issuer"}
    assert env["CEDARFLOW_JWKS_URL"] == {"Ref": "JwksUrl"}
    # Every app client's tokens are accepted; machine tokens become the service principal.
    assert sub_text(env["CEDARFLOW_CLIENT_ID"]) == "${UiClientId},${CliClientId},${MachineClientId}"
    assert sub_text(env["CEDARFLOW_SERVICE_CLIENT"]).startswith("${MachineClientId}=")
    assert env["CEDARFLOW_PUBLIC_URL"] == {"Ref": "PublicUrl"}
    assert env["CEDARFLOW_AUDIT_LOG"] == "-"


def test_serve_listens_where_the_load_balancer_sends(service, container):
    env = environment(container)
    group = only_resource(service, "AWS::ElasticLoadBalancingV2::TargetGroup")["Properties"]
    assert container["PortMappings"] == [{"ContainerPort": 8080, "Protocol": "tcp"}]
    assert int(env["CEDARFLOW_PORT"]) == group["Port"] == 8080
    assert env["CEDARFLOW_HOST"] == "0.0.0.0"
    assert group["HealthCheckPath"] == "/healthz"
    assert group["TargetType"] == "ip"


def test_deregistration_delay_is_the_drain_grace(service, container):
    group = only_resource(service, "AWS::ElasticLoadBalancingV2::TargetGroup")["Properties"]
    attributes = {a["Key"]: a["Value"] for a in group["TargetGroupAttributes"]}
    assert attributes["deregistration_delay.timeout_seconds"] == {"Ref": "DrainSeconds"}
    assert environment(container)["CEDARFLOW_DRAIN_SECONDS"] == {"Ref": "DrainSeconds"}
    # The container must outlive the drain: SIGKILL comes StopTimeout seconds after SIGTERM.
    assert container["StopTimeout"] >= service["Parameters"]["DrainSeconds"]["MaxValue"]


def test_https_with_the_certificate_and_http_redirected(service):
    listeners = {
        listener["Properties"]["Port"]: listener["Properties"]
        for listener in service["Resources"].values()
        if listener["Type"] == "AWS::ElasticLoadBalancingV2::Listener"
    }
    assert set(listeners) == {443, 80}
    https, http = listeners[443], listeners[80]
    assert https["Protocol"] == "HTTPS"
    assert https["Certificates"] == [{"CertificateArn": {"Ref": "CertificateArn"}}]
    assert https["DefaultActions"] == [
        {"Type": "forward", "TargetGroupArn": {"Ref": "TargetGroup"}}
    ]
    (redirect,) = http["DefaultActions"]
    assert redirect["Type"] == "redirect"
    assert redirect["RedirectConfig"]["Protocol"] == "HTTPS"


def test_at_least_two_tasks_rolled_back_when_a_deployment_fails(service):
    props = service["Resources"]["Service"]["Properties"]
    assert props["DesiredCount"] == {"Ref": "MinTasks"}
    assert service["Parameters"]["MinTasks"]["MinValue"] >= 2
    assert props["LaunchType"] == "FARGATE"
    assert props["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
        "Enable": True,
        "Rollback": True,
    }
    assert props["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"] == {"Ref": "SubnetIds"}


def test_autoscaling_on_cpu_and_on_requests_per_task(service):
    target = only_resource(service, "AWS::ApplicationAutoScaling::ScalableTarget")["Properties"]
    assert target["MinCapacity"] == {"Ref": "MinTasks"}
    assert target["MaxCapacity"] == {"Ref": "MaxTasks"}
    metrics = {
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"][
            "PredefinedMetricSpecification"
        ]["PredefinedMetricType"]
        for p in service["Resources"].values()
        if p["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy"
    }
    assert metrics == {"ECSServiceAverageCPUUtilization", "ALBRequestCountPerTarget"}


def test_tasks_take_traffic_from_the_load_balancer_only(service):
    ingress = service["Resources"]["TaskSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert ingress == [
        {
            "IpProtocol": "tcp",
            "FromPort": 8080,
            "ToPort": 8080,
            "SourceSecurityGroupId": {"Ref": "LoadBalancerSecurityGroup"},
        }
    ]


def test_logs_have_a_retention(service, container):
    group = service["Resources"]["LogGroup"]
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert container["LogConfiguration"]["Options"]["awslogs-group"] == {"Ref": "LogGroup"}
