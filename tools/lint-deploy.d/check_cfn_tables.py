#!/usr/bin/env python3
"""deploy/cloudformation/table.yaml must define the tables hemstream creates: the main table
equal to schemas/table.json (what `hemstream table create` sends and `table verify` checks) and
the lease table equal to schemas/lease-table.json (what `hemstream stream` creates on first
start). Each CloudFormation table is turned into the CreateTable request shape and compared
field by field; every difference is printed.

usage: check_cfn_tables.py TEMPLATE SCHEMAS_DIR"""
import json
import sys

from cfnlint.decode import decode


def resolve_name(value, parameters, conditions_true):
    """The table name with the parameters at their defaults (Ref, Fn::Sub, Fn::If)."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return parameters[value["Ref"]]
    if "Fn::Sub" in value:
        text = value["Fn::Sub"]
        for name, default in parameters.items():
            text = text.replace("${%s}" % name, default)
        return text
    if "Fn::If" in value:
        condition, yes, no = value["Fn::If"]
        return resolve_name(yes if condition in conditions_true else no, parameters, conditions_true)
    raise ValueError(f"cannot resolve table name {value!r}")


def request_of(props, parameters, conditions_true):
    """CloudFormation AWS::DynamoDB::Table properties as a CreateTable request (+ PITR flag)."""
    out = {
        "TableName": resolve_name(props["TableName"], parameters, conditions_true),
        "KeySchema": props.get("KeySchema"),
        "AttributeDefinitions": props.get("AttributeDefinitions"),
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if "StreamSpecification" in props:
        out["StreamSpecification"] = {
            "StreamEnabled": True, "StreamViewType": props["StreamSpecification"]["StreamViewType"]}
    if "SSESpecification" in props:
        sse = props["SSESpecification"]
        out["SSESpecification"] = {"Enabled": sse.get("SSEEnabled", False)}
        if "SSEType" in sse:
            out["SSESpecification"]["SSEType"] = sse["SSEType"]
    if "GlobalSecondaryIndexes" in props:
        out["GlobalSecondaryIndexes"] = [
            {"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]}
            for g in props["GlobalSecondaryIndexes"]]
    if "Tags" in props:
        out["Tags"] = props["Tags"]
    pitr = props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled")
    if pitr is not None:
        out["PointInTimeRecovery"] = pitr
    return out


def differences(expected, actual, path=""):
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            if key not in actual:
                yield f"{path}{key}: missing from the template (schema has {json.dumps(expected[key])})"
            elif key not in expected:
                yield f"{path}{key}: in the template, not in the schema ({json.dumps(actual[key])})"
            else:
                yield from differences(expected[key], actual[key], f"{path}{key}.")
    elif isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for i, (e, a) in enumerate(zip(expected, actual)):
            yield from differences(e, a, f"{path}{i}.")
    elif expected != actual:
        yield f"{path.rstrip('.')}: schema {json.dumps(expected)}, template {json.dumps(actual)}"


def main():
    template_path, schemas = sys.argv[1], sys.argv[2]
    template, matches = decode(template_path)
    if matches:
        for m in matches:
            print(f"{template_path}: {m}")
        return 1
    parameters = {k: v.get("Default", "") for k, v in template.get("Parameters", {}).items()}
    conditions_true = set()
    for name, cond in template.get("Conditions", {}).items():
        if "Fn::Equals" in cond:
            left, right = (resolve_name(x, parameters, set()) if isinstance(x, dict) else x
                           for x in cond["Fn::Equals"])
            if left == right:
                conditions_true.add(name)
    tables = {name: r["Properties"] for name, r in template["Resources"].items()
              if r["Type"] == "AWS::DynamoDB::Table"}
    failed = 0
    for schema_file in ("table.json", "lease-table.json"):
        with open(f"{schemas}/{schema_file}") as fh:
            expected = json.load(fh)
        candidates = {n: request_of(p, parameters, conditions_true) for n, p in tables.items()}
        found = [n for n, req in candidates.items() if req["TableName"] == expected["TableName"]]
        if len(found) != 1:
            print(f"{template_path}: no single table named {expected['TableName']} (schemas/{schema_file})")
            failed += 1
            continue
        diffs = list(differences(expected, candidates[found[0]]))
        for d in diffs:
            print(f"{template_path} {found[0]} vs schemas/{schema_file}: {d}")
        failed += bool(diffs)
        if not diffs:
            print(f"{found[0]} equals schemas/{schema_file}")
    if len(tables) != 2:
        print(f"{template_path}: {len(tables)} tables; expected the table and its lease table")
        failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
