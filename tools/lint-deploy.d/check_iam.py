#!/usr/bin/env python3
"""Each policy in deploy/iam/ must allow exactly the AWS calls its mode's code makes: no more
(least privilege), no fewer (the mode would fail with AccessDenied).

The calls are read from the code, not listed by hand: every string literal naming an AWS
operation in the mode's files, plus the operations of the functions those files call that are
defined elsewhere (AWSWire's s3GetObject, LeaseTable.ensureExists, ...), followed transitively
where the function's name is defined once in Sources/.
An operation maps to the IAM actions AWS documents for it (a point-in-time restore needs the
item actions on the new table as well). The loader's CloudWatch statement must be limited to
the namespace LoadCommand uses by default.

usage: check_iam.py REPO_ROOT"""
import glob
import json
import os
import re
import sys

# The modes and their code: the executable's command file and the modules only it uses.
MODES = {
    "loader.json": ["Sources/hemstream/LoadCommand.swift", "Sources/Loader/*.swift", "Sources/Export/*.swift"],
    "stream.json": ["Sources/hemstream/StreamCommand.swift", "Sources/Stream/*.swift"],
    "table-admin.json": ["Sources/hemstream/TableCommand.swift", "Sources/Table/*.swift"],
    "query.json": ["Sources/hemstream/QueryCommand.swift"],
    None: ["Sources/hemstream/PublishCommand.swift", "Sources/Publish/*.swift"],  # publish: no AWS at all
}

DYNAMODB = """BatchGetItem BatchWriteItem CreateTable DeleteItem DeleteTable DescribeContinuousBackups
DescribeTable DescribeTimeToLive GetItem ListTables ListTagsOfResource PutItem Query
RestoreTableToPointInTime Scan TagResource TransactGetItems TransactWriteItems UntagResource
UpdateContinuousBackups UpdateItem UpdateTable UpdateTimeToLive DescribeStream GetRecords
GetShardIterator ListStreams""".split()
OTHER = {
    "GetObject": ["s3:GetObject"], "HeadObject": ["s3:GetObject"], "ListObjectsV2": ["s3:ListBucket"],
    "PutObject": ["s3:PutObject"], "CreateBucket": ["s3:CreateBucket"],
    "PutMetricData": ["cloudwatch:PutMetricData"],
}
# AWS: "Restoring a DynamoDB table to a point in time" needs these on the restored table too.
IMPLIED = {
    "RestoreTableToPointInTime": ["dynamodb:" + a for a in
                                  "PutItem GetItem Query Scan UpdateItem DeleteItem BatchWriteItem".split()],
}


def actions_of(operation):
    base = ["dynamodb:" + operation] if operation in DYNAMODB else OTHER.get(operation, [])
    return base + IMPLIED.get(operation, [])


LITERAL = re.compile(r'"([A-Z][A-Za-z0-9]+)"')
FUNC = re.compile(r'\bfunc\s+([A-Za-z_][A-Za-z0-9_]*)\s*[(<]')
CALL = re.compile(r'\.([A-Za-z_][A-Za-z0-9_]*)\(')


def code(text):
    """The text without comments (// to end of line), so a doc comment naming a call is no call."""
    return "\n".join(line.split("//")[0] if '"' not in line.split("//")[0] else line
                     for line in text.split("\n"))


def functions(path):
    """name -> body text of each func in the file (by brace matching from its first '{')."""
    text = code(open(path).read())
    out = {}
    for m in FUNC.finditer(text):
        start = text.find("{", m.end())
        if start < 0:
            continue
        depth, i = 0, start
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        out.setdefault(m.group(1), []).append(text[start:i + 1])
    return out


def operations(text):
    return {op for op in LITERAL.findall(text) if actions_of(op)}


def main():
    root = sys.argv[1]
    os.chdir(root)
    sources = [p for p in glob.glob("Sources/**/*.swift", recursive=True) if "/TestSupport/" not in p]
    by_name = {}
    for path in sources:
        for name, bodies in functions(path).items():
            for body in bodies:
                by_name.setdefault(name, []).append((path, body))

    failed = False
    for policy, patterns in MODES.items():
        files = sorted({p for pat in patterns for p in glob.glob(pat)})
        ops, seen, todo = set(), set(), []
        for path in files:
            text = code(open(path).read())
            ops |= operations(text)
            todo += CALL.findall(text)
        while todo:  # functions defined outside the mode's files, followed transitively
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            definitions = by_name.get(name, [])
            # A name defined more than once (run, call, next) cannot tell which is meant from
            # the text alone; the mode's own literals already cover its own wrappers.
            if len(definitions) != 1:
                continue
            for path, body in definitions:
                if path in files:
                    continue
                ops |= operations(body)
                todo += CALL.findall(body)
        needed = {a for op in ops for a in actions_of(op)}
        if policy is None:
            if needed:
                print(f"publish makes AWS calls {sorted(needed)}: it is meant to need none")
                failed = True
            else:
                print("publish: no AWS calls, no policy")
            continue
        doc = json.load(open(f"deploy/iam/{policy}"))
        allowed = set()
        for statement in doc["Statement"]:
            if statement["Effect"] != "Allow":
                continue
            actions = statement["Action"]
            allowed |= set([actions] if isinstance(actions, str) else actions)
            resources = statement["Resource"]
            resources = [resources] if isinstance(resources, str) else resources
            if "*" in resources and not (set(actions if isinstance(actions, list) else [actions])
                                         <= {"cloudwatch:PutMetricData"} and "Condition" in statement):
                print(f"deploy/iam/{policy} {statement.get('Sid')}: Resource '*' without a reason")
                failed = True
        extra, missing = sorted(allowed - needed), sorted(needed - allowed)
        if extra:
            print(f"deploy/iam/{policy}: allows what the code never calls: {extra}")
        if missing:
            print(f"deploy/iam/{policy}: the code calls what it does not allow: {missing} "
                  f"(from {sorted(ops)})")
        failed |= bool(extra or missing)
        if not (extra or missing):
            print(f"deploy/iam/{policy}: exactly {sorted(needed)}")

    # The loader's metrics statement names the namespace it publishes in by default.
    namespace = re.search(r'var metricsNamespace = "([^"]+)"', open("Sources/hemstream/LoadCommand.swift").read())
    loader = json.load(open("deploy/iam/loader.json"))
    conditions = [s.get("Condition", {}).get("StringEquals", {}).get("cloudwatch:namespace")
                  for s in loader["Statement"] if "cloudwatch:PutMetricData" in json.dumps(s.get("Action"))]
    if namespace and conditions != [namespace.group(1)]:
        print(f"deploy/iam/loader.json: cloudwatch:namespace {conditions} is not the loader's default "
              f"{namespace.group(1)!r}")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
