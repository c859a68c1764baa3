#!/usr/bin/env python3
"""A null DynamoDB endpoint that holds a table for `Scan`, for `tools/bench reconcile`.

    scan_endpoint.py --port P --export DAY1.csv.gz [--page-bytes 1000000]

At start it turns the export into the items `hemstream load` would write (empty vup_id -> the
UNRESOLVED#xx sentinel, empty attributes left out) and serialises them into Scan pages of about
--page-bytes (DynamoDB's 1 MB page) per segment, for whatever TotalSegments a request names
(hash of the hem, computed on first use; for 8 segments, hemstream's default, at start). Scan answers those pages, with LastEvaluatedKey
pointing at the next; BatchWriteItem answers {"UnprocessedItems":{}}, TransactWriteItems {},
anything else {}. It stores no write; it counts put and delete requests, transaction actions and
calls per operation, which GET /stats returns as JSON. It prints "ready" on stdout when listening.
Python 3 standard library only.
"""

import argparse
import csv
import gzip
import http.server
import io
import json
import sys
import threading
import zlib

FIELDS = ["vup_id", "hem", "email", "domain", "source", "last_verified", "updated_at"]


def items_of(path):
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rt", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            hem = row["hem"].strip()
            item = {"hem": hem, "vup_id": row.get("vup_id", "").strip() or "UNRESOLVED#" + hem[:2]}
            for name in ("email", "domain", "source", "last_verified", "updated_at"):
                value = (row.get(name) or "").strip()
                if value:
                    item[name] = value
            yield item


class Table:
    def __init__(self, items, page_bytes):
        # Each item serialised once: {"vup_id":{"S":...},...}
        self.encoded = [
            (zlib.crc32(item["hem"].encode()), json.dumps({k: {"S": item[k]} for k in FIELDS if k in item},
                                                         separators=(",", ":")).encode())
            for item in items
        ]
        self.page_bytes = page_bytes
        self.pages = {}
        self.lock = threading.Lock()

    def page(self, total, segment, index):
        with self.lock:
            if total not in self.pages:
                buckets = [[] for _ in range(total)]
                for crc, body in self.encoded:
                    buckets[crc % total].append(body)
                self.pages[total] = [self.paginate(b, total, s) for s, b in enumerate(buckets)]
        pages = self.pages[total][segment]
        return pages[index] if index < len(pages) else pages[-1]

    def paginate(self, bodies, total, segment):
        groups, current, size = [], [], 0
        for body in bodies:
            if current and size + len(body) > self.page_bytes:
                groups.append(current)
                current, size = [], 0
            current.append(body)
            size += len(body) + 1
        groups.append(current)
        pages = []
        for i, group in enumerate(groups):
            units = max(0.5, sum(len(b) for b in group) / 4096 / 2)
            tail = b'],"Count":%d,"ScannedCount":%d,"ConsumedCapacity":{"TableName":"t","CapacityUnits":%.1f}' % (
                len(group), len(group), units)
            if i + 1 < len(groups):
                tail += b',"LastEvaluatedKey":{"vup_id":{"S":"bench"},"hem":{"S":"%d"}}' % (i + 1)
            pages.append(b'{"Items":[' + b",".join(group) + tail + b"}")
        return pages


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {"calls": {}, "puts": 0, "deletes": 0, "transaction_actions": 0, "scanned_items": 0}

    def add(self, operation, puts=0, deletes=0, actions=0):
        with self.lock:
            c = self.counts
            c["calls"][operation] = c["calls"].get(operation, 0) + 1
            c["puts"] += puts
            c["deletes"] += deletes
            c["transaction_actions"] += actions


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--export", required=True)
    parser.add_argument("--page-bytes", type=int, default=1_000_000)
    args = parser.parse_args()
    table = Table(items_of(args.export), args.page_bytes)
    # The pages of hemstream's default 8 segments, built now rather than on the first Scan (which
    # would charge their building, a second or more at 1M items, to the run being measured).
    table.page(8, 0, 0)
    stats = Stats()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes: with Nagle on, the body's last segment waits
        # for the client's delayed ACK of the headers (~40 ms a page).
        disable_nagle_algorithm = True

        def log_message(self, *a):
            pass

        def reply(self, body, status=200):
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            with stats.lock:
                self.reply(json.dumps(stats.counts).encode())

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            operation = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
            if operation == "Scan":
                request = json.loads(body)
                total = request.get("TotalSegments", 1)
                start = request.get("ExclusiveStartKey")
                index = int(start["hem"]["S"]) if start else 0
                stats.add(operation)
                return self.reply(table.page(total, request.get("Segment", 0), index))
            if operation == "BatchWriteItem":
                text = body.decode()
                stats.add(operation, puts=text.count('"PutRequest"'), deletes=text.count('"DeleteRequest"'))
                return self.reply(b'{"UnprocessedItems":{}}')
            if operation == "TransactWriteItems":
                text = body.decode()
                stats.add(operation, actions=text.count('"Put"') + text.count('"Delete"'))
                return self.reply(b"{}")
            stats.add(operation)
            self.reply(b"{}")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
