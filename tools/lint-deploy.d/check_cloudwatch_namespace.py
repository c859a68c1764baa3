#!/usr/bin/env python3
"""The CloudWatch namespace deploy/iam/loader.json allows must be the one `hemstream load
--metrics cloudwatch` writes to by default (the --metrics-namespace default in LoadCommand.swift),
or the nightly load's PutMetricData is denied. Usage: check_cloudwatch_namespace.py LOADCOMMAND POLICY"""
import json
import re
import sys


def main(command_path, policy_path):
    source = open(command_path, encoding="utf-8").read()
    match = re.search(r'var metricsNamespace = "([^"]+)"', source)
    if not match:
        print(f"{command_path}: no metricsNamespace default found")
        return 1
    default = match.group(1)
    policy = json.load(open(policy_path, encoding="utf-8"))
    allowed = []
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if "cloudwatch:PutMetricData" in actions:
            allowed.append(statement.get("Condition", {}).get("StringEquals", {}).get("cloudwatch:namespace"))
    if default not in allowed:
        print(f"{policy_path}: PutMetricData allowed for namespace {allowed}, but load writes to {default!r}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
