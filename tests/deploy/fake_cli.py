"""Stand-in for `aws`, `docker` and `cedarflow` that records each call and answers minimally.

Used as `python fake_cli.py PROGRAM ARGS...`; calls are appended as JSON lines to the file in
FAKE_CLI_LOG. deploy.sh's own logic (order, parameters, outputs it reads) runs unchanged.
"""

from __future__ import annotations

import json
import os
import re
import sys

ACCOUNT = "123456789012"
OUTPUT_VALUES = {
    "VpcId": "vpc-0a1b2c3d",
    "SubnetIds": "subnet-0aaa,subnet-0bbb",
    "AssignPublicIp": "ENABLED",
    "TableUri": "dynamodb://eu-west-1/cedarflow",
    "TableName": "cedarflow",
    "RepositoryUri": f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/cedarflow",
    "CliLoopbackPort": "47318",
    "Url": "https://mlflow.example.com",
}


def main(program: str, args: list[str]) -> int:
    with open(os.environ["FAKE_CLI_LOG"], "a") as log:
        log.write(json.dumps([program, *args]) + "\n")
    if program == "docker" and "--password-stdin" in args:
        sys.stdin.read()  # as docker does: the password comes through the pipe
    if program != "aws":
        return 0
    command = args[:2]
    if command == ["sts", "get-caller-identity"]:
        print(ACCOUNT)
    elif command == ["cloudformation", "describe-stacks"] and "--query" in args:
        key = re.search(r"OutputKey=='(\w+)'", args[args.index("--query") + 1]).group(1)
        print(OUTPUT_VALUES.get(key, f"{key}-value"))
    elif command == ["ecr", "describe-images"]:
        return 254  # the image is not in the repository yet
    elif command == ["ecr", "get-login-password"]:
        print("password")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
