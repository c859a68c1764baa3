#!/usr/bin/env python3
"""Checks a tools/gen-export directory independently of the generator: both days sorted by hem,
hem = sha256 of the email, emails only at example.invalid, timestamps ISO 8601 with Z, and the
day1 -> day2 differences (found by a merge-join of the two files) equal expected-changes.json.

    python3 tools/bench.d/check_export.py DIR     exit 0 and "ok" on stdout, else 1 and what differs
"""

import csv
import gzip
import hashlib
import io
import json
import os
import re
import sys

TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")
HEADER = ["hem", "vup_id", "email", "domain", "last_verified", "source", "updated_at"]


def rows(path, problems):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as raw:
        reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
        if next(reader) != HEADER:
            problems.append(f"{path}: header is not {','.join(HEADER)}")
        prev = ""
        for line, r in enumerate(reader, start=2):
            hem, vup, email, domain, lv, src, upd = r
            if hem <= prev:
                problems.append(f"{path}:{line}: hem not after the previous one")
            prev = hem
            if not email.endswith("@example.invalid") or domain != "example.invalid":
                problems.append(f"{path}:{line}: email or domain not at example.invalid")
            if hashlib.sha256(email.encode()).hexdigest() != hem:
                problems.append(f"{path}:{line}: hem is not sha256(email)")
            if not TS.match(upd) or (lv and not TS.match(lv)):
                problems.append(f"{path}:{line}: timestamp not ISO 8601 with Z")
            if vup and not vup.startswith("VUP-"):
                problems.append(f"{path}:{line}: odd vup_id")
            if len(problems) > 20:
                return
            yield hem, r


def main(d):
    exp = json.load(open(os.path.join(d, "expected-changes.json")))
    problems = []
    counts = dict(added=0, removed=0, updated=0, resolved=0, reassigned=0, unresolved=0, unchanged=0)
    n1 = n2 = u1 = u2 = 0
    it1 = rows(os.path.join(d, exp["files"]["day1"]), problems)
    it2 = rows(os.path.join(d, exp["files"]["day2"]), problems)
    a, b = next(it1, None), next(it2, None)
    while a or b:  # merge-join on hem
        if b is None or (a and a[0] < b[0]):
            counts["removed"] += 1
            n1 += 1
            u1 += not a[1][1]
            a = next(it1, None)
        elif a is None or b[0] < a[0]:
            counts["added"] += 1
            n2 += 1
            u2 += not b[1][1]
            b = next(it2, None)
        else:
            r1, r2 = a[1], b[1]
            n1 += 1
            n2 += 1
            u1 += not r1[1]
            u2 += not r2[1]
            if r1 == r2:
                counts["unchanged"] += 1
            elif r1[1] == r2[1]:
                counts["updated"] += 1
            elif not r1[1]:
                counts["resolved"] += 1
            elif not r2[1]:
                counts["unresolved"] += 1
            else:
                counts["reassigned"] += 1
            a, b = next(it1, None), next(it2, None)
    got = {k: counts[k] for k in exp["changes"]}
    if got != exp["changes"]:
        problems.append(f"changes: expected {exp['changes']}, found {got}")
    if counts["unchanged"] != exp["unchanged"]:
        problems.append(f"unchanged: expected {exp['unchanged']}, found {counts['unchanged']}")
    if (n1, u1, n2, u2) != (exp["day1"]["rows"], exp["day1"]["unresolved"], exp["day2"]["rows"], exp["day2"]["unresolved"]):
        problems.append(f"row counts: found day1 {n1} ({u1} unresolved), day2 {n2} ({u2} unresolved)")
    if problems:
        print("\n".join(problems[:20]))
        sys.exit(1)
    print("ok", json.dumps(counts))


if __name__ == "__main__":
    main(sys.argv[1])
