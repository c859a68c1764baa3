#!/usr/bin/env python3
"""The straightforward Python loader that `tools/bench load` compares hemstream with: gzip and csv
from the standard library, the row rules of `hemstream load` roughly, and boto3's batch_writer.
It is what one would write in an afternoon (the seed's Lambda loader, run locally), not a
strawman: one process, one thread, boto3 doing the batching and UnprocessedItems retries.

    boto3_loader.py FILE [--table vector_emails_operational] [--limit N]

The endpoint, credentials and region come from the environment as for any boto3 program
(AWS_ENDPOINT_URL_DYNAMODB, AWS_ACCESS_KEY_ID, AWS_REGION, ...). Prints one JSON summary line.
"""

import argparse
import csv
import gzip
import io
import json
import sys
from datetime import datetime, timezone

import boto3

HEX = frozenset("0123456789abcdef")


def utc(value):
    """ISO 8601 with a zone -> ...Z in UTC; no zone or unparsable -> None (the row is rejected)."""
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    if t.tzinfo is None:
        return None
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def item(row):
    """The DynamoDB item for one CSV row, or (None, reason)."""
    hem = (row.get("hem") or "").strip().lower()
    if len(hem) not in (32, 40, 64) or not set(hem) <= HEX:
        return None, "bad_hem"
    vup = (row.get("vup_id") or "").strip() or "UNRESOLVED#" + hem[:2]
    updated = utc((row.get("updated_at") or "").strip())
    if updated is None:
        return None, "bad_updated_at"
    out = {"vup_id": vup, "hem": hem, "updated_at": updated}
    for name in ("email", "domain", "source"):
        v = (row.get(name) or "").strip()
        if v:
            out[name] = v
    lv = (row.get("last_verified") or "").strip()
    if lv:
        lv = utc(lv)
        if lv is None:
            return None, "bad_last_verified"
        out["last_verified"] = lv
    return out, None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("file")
    p.add_argument("--table", default="vector_emails_operational")
    p.add_argument("--limit", type=int, default=0, help="stop after this many rows (0: all)")
    a = p.parse_args()

    table = boto3.resource("dynamodb").Table(a.table)
    opener = gzip.open if open(a.file, "rb").read(2) == b"\x1f\x8b" else open
    read = written = 0
    rejected = {}
    with opener(a.file, "rb") as raw, table.batch_writer(overwrite_by_pkeys=["vup_id", "hem"]) as batch:
        for row in csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")):
            if a.limit and read >= a.limit:
                break
            read += 1
            it, reason = item(row)
            if it is None:
                rejected[reason] = rejected.get(reason, 0) + 1
                continue
            batch.put_item(Item=it)
            written += 1
    print(json.dumps({"rows_read": read, "items_written": written, "rejected": rejected}))
    sys.exit(2 if rejected else 0)


if __name__ == "__main__":
    main()
