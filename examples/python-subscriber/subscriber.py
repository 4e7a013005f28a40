#!/usr/bin/env python3
"""An analytics subscriber to copy: a durable JetStream consumer on WFL_LEDGER.

Each message on wfl.ledger.<org>.<event_type> carries a protobuf wfl.v1.CommittedEvent (decoded
with code generated from proto/ by ./generate.sh) and the headers Wfl-Sequence, Wfl-Hash and
Wfl-Event-Type. The consumer is durable: after a restart it resumes after the last message it
acknowledged. Acknowledge only after your own processing is durable; JetStream redelivers the
rest, so make processing idempotent on Wfl-Sequence.

    ./generate.sh && python3 subscriber.py --nats-url nats://127.0.0.1:4222 --durable analytics
"""
import argparse
import asyncio
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
# ./gen holds the generated decoding; ./.deps the requirements when installed with --target.
sys.path.insert(0, os.path.join(here, "gen"))
sys.path.insert(0, os.path.join(here, ".deps"))

import nats  # noqa: E402
from nats.errors import TimeoutError as NatsTimeout  # noqa: E402
from wfl.v1 import events_pb2  # noqa: E402


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    p.add_argument("--durable", default="analytics")
    p.add_argument("--subject", default="wfl.ledger.>", help="e.g. wfl.ledger.acme.> for one org")
    p.add_argument("--count", type=int, default=0, help="stop after this many events (0 = forever)")
    args = p.parse_args()

    nc = await nats.connect(args.nats_url)
    js = nc.jetstream()
    sub = await js.pull_subscribe(args.subject, durable=args.durable, stream="WFL_LEDGER")
    handled = 0
    try:
        while args.count == 0 or handled < args.count:
            try:
                msgs = await sub.fetch(100, timeout=5)
            except NatsTimeout:
                continue  # idle: nothing committed lately
            for msg in msgs:
                committed = events_pb2.CommittedEvent()
                committed.ParseFromString(msg.data)
                sequence = int(msg.headers["Wfl-Sequence"])
                assert sequence == committed.sequence, "header and payload disagree"
                event = committed.event
                print(json.dumps({
                    "sequence": sequence,
                    "hash": msg.headers["Wfl-Hash"],
                    "event_type": msg.headers["Wfl-Event-Type"],
                    "event_id": event.event_id,
                    "org_id": event.org_id,
                    "payload_kind": event.payload.WhichOneof("kind"),
                }), flush=True)
                await msg.ack()
                handled += 1
                if args.count and handled >= args.count:
                    break
    finally:
        await nc.drain()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
