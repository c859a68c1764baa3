#!/usr/bin/env python3
"""A replay server for DynamoDB Streams (JSON 1.0: DescribeStream, GetShardIterator,
GetRecords; auth ignored), for tools/bench.d/stream.

    replay_streams.py --records N [--shards S] [--port P] [--summary FILE] [--delete-share F]

Serves one NEW_AND_OLD_IMAGES stream with S closed shards. Its records are generated once at
start, like a table's stream after a load: a day-1 burst of INSERTs, then a day-2 mix of moves
(a REMOVE of the old key, then an INSERT with previous_vup_id naming it: adjacent, same
ApproximateCreationDateTime, same shard), MODIFYs of a public attribute, and deletes (REMOVEs).
Items are spread over shards by hem, so one item's records stay in order on one shard. Every
GetRecords page of 1000 records is serialized at start; answers are those bytes, so the server
costs little next to the reader under test. Emails are synthetic `userN@example.invalid`.

Prints `PORT STREAM_ARN` on its first stdout line once listening; --summary writes the counts
(records per kind, expected events) as JSON.
"""
import argparse
import hashlib
import json
import random
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGE = 1000
REGION = "us-east-1"
TABLE = "bench"
LABEL = "2024-01-01T00:00:00.000"
ARN = f"arn:aws:dynamodb:{REGION}:123456789012:table/{TABLE}/stream/{LABEL}"
DOMAINS = ["example.invalid", "mail.example.invalid", "corp.example.invalid", "shop.example.invalid"]
SOURCES = ["crm-import", "web-signup", "partner-feed", "support-desk"]


def s(v):
    return {"S": v}


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def generate(n, shards, seed=1, deletes=0.15):
    """Returns (per-shard record lists, summary). Each record is a dict (wire JSON). `deletes` is
    the share of day-2 changes that are deletes (each costs the reader a hem-index lookup); the
    rest of that share becomes MODIFYs."""
    rnd = random.Random(seed)
    now = int(time.time())
    day1 = n * 6 // 10  # day-1 burst: INSERTs
    out = [[] for _ in range(shards)]
    seq = [0]
    counts = {"INSERT": 0, "move": 0, "MODIFY": 0, "noop_MODIFY": 0, "delete": 0}

    def shard_of(hem):
        return int(hem[:8], 16) % shards

    def emit(name, hem, t, old=None, new=None):
        seq[0] += 1
        number = str(10**20 + seq[0] * 7)  # 21 digits, increasing
        img = new or old
        d = {
            "ApproximateCreationDateTime": t,
            "Keys": {"vup_id": img["vup_id"], "hem": img["hem"]},
            "SequenceNumber": number,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if new is not None:
            d["NewImage"] = new
        if old is not None:
            d["OldImage"] = old
        d["SizeBytes"] = len(json.dumps(d))
        out[shard_of(hem)].append({
            "eventID": hashlib.md5(number.encode()).hexdigest(),
            "eventName": name, "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": REGION,
            "dynamodb": d, "eventSourceARN": ARN,
        })

    def image(i, hem, vup, t, domain, source, previous=None):
        img = {
            "vup_id": s(vup), "hem": s(hem), "email": s(f"user{i}@example.invalid"), "domain": s(domain),
            "last_verified": s(iso(t - 86400 * rnd.randint(1, 300))), "source": s(source),
            "updated_at": s(iso(t)),
        }
        if previous:
            img["previous_vup_id"] = s(previous)
        return img

    # Day 1: a burst of INSERTs (the load), ~20 h to ~12 h ago, about 4 records a second.
    live = {}  # index -> current image
    t0 = now - 20 * 3600
    for i in range(day1):
        t = t0 + i // 4
        hem = hashlib.sha256(f"hem-{i}".encode()).hexdigest()
        img = image(i, hem, f"VUP#{i:012d}", t, rnd.choice(DOMAINS), rnd.choice(SOURCES))
        live[i] = img
        emit("INSERT", hem, t, new=img)
        counts["INSERT"] += 1
    # Day 2: moves (2 records), MODIFYs and deletes, ~6 h to ~1 h ago.
    keys = list(live)
    t1 = now - 6 * 3600
    k = day1
    step = 0
    while k < n:
        t = t1 + step // 10
        step += 1
        i = keys[rnd.randrange(len(keys))]
        if i not in live:
            continue
        cur = live[i]
        hem = cur["hem"]["S"]
        r = rnd.random()
        if r < 0.3 and k + 2 <= n:  # a move: REMOVE old key, INSERT new key naming it
            vup = f"VUP#{i:012d}-{k}"
            new = dict(cur, vup_id=s(vup), previous_vup_id=cur["vup_id"], updated_at=s(iso(t)))
            emit("REMOVE", hem, t, old=cur)
            emit("INSERT", hem, t, new=new)
            live[i] = new
            counts["move"] += 1
            k += 2
        elif r < 1 - deletes:  # a MODIFY of public attributes
            new = dict(cur, last_verified=s(iso(t)), domain=s(rnd.choice(DOMAINS)), updated_at=s(iso(t)))
            emit("MODIFY", hem, t, old=cur, new=new)
            live[i] = new
            # The same domain drawn again within the same second changes nothing: no event.
            counts["MODIFY" if new != cur else "noop_MODIFY"] += 1
            k += 1
        else:  # a delete
            emit("REMOVE", hem, t, old=cur)
            del live[i]
            counts["delete"] += 1
            k += 1
    summary = {
        "records": n, "shards": shards, "stream_arn": ARN, "counts": counts,
        "expected_events": counts["INSERT"] + counts["move"] + counts["MODIFY"] + counts["delete"],
        "records_per_shard": [len(x) for x in out],
    }
    return out, summary


class Stream:
    def __init__(self, shards):
        self.shard_ids = [f"shardId-00000001700000000000-{i:08x}" for i in range(len(shards))]
        self.records = shards
        self.seqs = [[r["dynamodb"]["SequenceNumber"] for r in recs] for recs in shards]
        # Pre-serialized full pages: (shard, start index) -> bytes.
        self.pages = {}
        for si, recs in enumerate(shards):
            for start in range(0, len(recs), PAGE):
                self.pages[(si, start)] = self.page_bytes(si, start, PAGE)

    def iterator(self, si, index):
        return f"it|{si}|{index}"

    def page_bytes(self, si, start, limit):
        recs = self.records[si][start:start + limit]
        end = start + len(recs)
        body = {"Records": recs}
        if end < len(self.records[si]):
            body["NextShardIterator"] = self.iterator(si, end)
        # At the end of a closed shard: no NextShardIterator.
        return json.dumps(body, separators=(",", ":")).encode()

    def shard_json(self, si):
        seqs = self.seqs[si]
        rng = {"StartingSequenceNumber": seqs[0] if seqs else str(10**20)}
        rng["EndingSequenceNumber"] = seqs[-1] if seqs else str(10**20)
        return {"ShardId": self.shard_ids[si], "SequenceNumberRange": rng}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    stream = None

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", "replay")
        self.end_headers()
        self.wfile.write(body)

    def error(self, code, message, status=400):
        self.reply(status, json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}).encode())

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        op = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self.error("SerializationException", "bad JSON")
        st = self.stream
        if op != "DescribeStream" and op != "GetShardIterator" and op != "GetRecords":
            return self.error("UnknownOperationException", f"unknown operation {op}")
        if op != "GetRecords" and body.get("StreamArn") != ARN:
            return self.error("ResourceNotFoundException", "no such stream")
        if op == "DescribeStream":
            ids = list(range(len(st.shard_ids)))
            f = body.get("ShardFilter")
            if f:
                if f.get("Type") != "CHILD_SHARDS":
                    return self.error("ValidationException", "ShardFilter.Type")
                ids = []  # no shard here has children
            start = body.get("ExclusiveStartShardId")
            if start in st.shard_ids:
                ids = [i for i in ids if i > st.shard_ids.index(start)]
            limit = int(body.get("Limit", 100))
            page = ids[:limit]
            d = {
                "StreamArn": ARN, "StreamLabel": LABEL, "StreamStatus": "ENABLED",
                "StreamViewType": "NEW_AND_OLD_IMAGES", "TableName": TABLE,
                "CreationRequestDateTime": time.time() - 86000,
                "KeySchema": [{"AttributeName": "vup_id", "KeyType": "HASH"}, {"AttributeName": "hem", "KeyType": "RANGE"}],
                "Shards": [st.shard_json(i) for i in page],
            }
            if len(ids) > limit and page:
                d["LastEvaluatedShardId"] = st.shard_ids[page[-1]]
            return self.reply(200, json.dumps({"StreamDescription": d}).encode())
        if op == "GetShardIterator":
            if body.get("ShardId") not in st.shard_ids:
                return self.error("ResourceNotFoundException", "no such shard")
            si = st.shard_ids.index(body["ShardId"])
            kind = body.get("ShardIteratorType")
            seqs = st.seqs[si]
            if kind == "TRIM_HORIZON":
                index = 0
            elif kind == "LATEST":
                index = len(seqs)
            elif kind in ("AFTER_SEQUENCE_NUMBER", "AT_SEQUENCE_NUMBER"):
                n = int(body.get("SequenceNumber", "0"))
                index = 0
                # bisect on the numeric value
                lo, hi = 0, len(seqs)
                while lo < hi:
                    mid = (lo + hi) // 2
                    if int(seqs[mid]) < n or (kind == "AFTER_SEQUENCE_NUMBER" and int(seqs[mid]) == n):
                        lo = mid + 1
                    else:
                        hi = mid
                index = lo
            else:
                return self.error("ValidationException", "ShardIteratorType")
            return self.reply(200, json.dumps({"ShardIterator": st.iterator(si, index)}).encode())
        # GetRecords
        it = body.get("ShardIterator", "")
        parts = it.split("|")
        if len(parts) != 3 or parts[0] != "it":
            return self.error("ValidationException", "invalid ShardIterator")
        si, index = int(parts[1]), int(parts[2])
        limit = min(int(body.get("Limit", PAGE)), PAGE)
        cached = st.pages.get((si, index)) if limit == PAGE else None
        self.reply(200, cached if cached is not None else st.page_bytes(si, index, limit))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200000)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--summary")
    ap.add_argument("--delete-share", type=float, default=0.15)
    a = ap.parse_args()
    shards, summary = generate(a.records, a.shards, deletes=a.delete_share)
    Handler.stream = Stream(shards)
    if a.summary:
        with open(a.summary, "w") as f:
            json.dump(summary, f)
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    print(srv.server_address[1], ARN, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
