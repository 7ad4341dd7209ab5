"""data.yaml: the table is the one the stores use, and neither it nor the bucket can be lost."""

from __future__ import annotations

import pytest
from deploy_support import (
    branches,
    only_resource,
    store_table_definition,
    sub_text,
    template,
    template_table_definition,
)

from store.dynamo.uri import parse_dynamo_uri


@pytest.fixture(scope="module")
def data() -> dict:
    return template("data.yaml")


@pytest.fixture(scope="module")
def table(data) -> dict:
    return only_resource(data, "AWS::DynamoDB::GlobalTable")


@pytest.fixture(scope="module")
def bucket(data) -> dict:
    return data["Resources"]["ArtifactBucket"]


def test_table_matches_the_stores_definition(table):
    assert template_table_definition(table) == store_table_definition()


def test_table_is_named_by_the_deployment_unless_a_restore_names_it(table):
    named, restored = branches(table["Properties"]["TableName"])
    assert (named, restored) == ({"Ref": "TableName"}, {"Ref": "Name"})
    assert table["Condition"] == "ManagesTable"  # false hands the table over (RUNBOOK.md)


def test_table_output_is_a_uri_the_store_accepts(data):
    uri = sub_text(data["Outputs"]["TableUri"]["Value"])
    assert uri == "dynamodb://${AWS::Region}/${Table}"
    location = parse_dynamo_uri(
        uri.replace("${AWS::Region}", "eu-west-1").replace("${Table}", "t1x")
    )
    assert (location.region, location.table, location.is_local) == ("eu-west-1", "t1x", False)


def test_every_replica_has_recovery_and_deletion_protection(table):
    replica_lists = list(branches(table["Properties"]["Replicas"]))
    assert [len(replicas) for replicas in replica_lists] == [2, 1]
    for replicas in replica_lists:
        assert replicas[0]["Region"] == {"Ref": "AWS::Region"}
        for replica in replicas:
            assert replica["PointInTimeRecoverySpecification"] == {
                "PointInTimeRecoveryEnabled": True
            }
            assert replica["DeletionProtectionEnabled"] is True
    assert replica_lists[0][1]["Region"] == {"Ref": "ReplicaRegion"}


@pytest.mark.parametrize("name", ["Table", "ArtifactBucket", "ArtifactBucketPolicy"])
def test_kept_when_deleted_or_replaced(data, name):
    resource = data["Resources"][name]
    assert resource["DeletionPolicy"] == "Retain"
    assert resource["UpdateReplacePolicy"] == "Retain"


def test_bucket_is_versioned_encrypted_and_private(bucket):
    props = bucket["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rules[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }


def test_bucket_refuses_plain_http(data):
    policy = data["Resources"]["ArtifactBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "ArtifactBucket"}
    denials = [
        s
        for s in policy["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny"
        and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(denials) == 1
    deny = denials[0]
    assert deny["Principal"] == "*"
    assert deny["Action"] == "s3:*"
    assert deny["Resource"] == [
        {"Fn::GetAtt": ["ArtifactBucket", "Arn"]},
        {"Fn::Sub": "${ArtifactBucket.Arn}/*"},
    ]


def test_bucket_replicates_only_with_a_replica_region(bucket):
    with_replica, without = branches(bucket["Properties"]["ReplicationConfiguration"])
    assert without == {"Ref": "AWS::NoValue"}
    destination = with_replica["Rules"][0]["Destination"]["Bucket"]
    # The name replica-bucket.yaml gives the bucket in the second region.
    assert sub_text(destination).endswith(
        ":s3:::${Name}-artifacts-${AWS::AccountId}-${ReplicaRegion}"
    )
    assert with_replica["Rules"][0]["DeleteMarkerReplication"] == {"Status": "Enabled"}


def test_replica_bucket_has_the_name_replication_expects():
    bucket = template("replica-bucket.yaml")["Resources"]["ReplicaBucket"]
    assert sub_text(bucket["Properties"]["BucketName"]) == (
        "${Name}-artifacts-${AWS::AccountId}-${AWS::Region}"
    )
    assert bucket["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
