#!/usr/bin/env python3
"""A gRPC client of wfl to copy: discover the API, record events, follow the ledger, read views.

Uses stubs generated from proto/ by ./generate.sh (into ./gen) and the standard gRPC reflection
client (grpcio-reflection, which speaks grpc.reflection.v1alpha; wfl serves v1 and v1alpha).
Every answer is printed as one JSON line (protobuf JSON, field names as in the .proto files).

    ./generate.sh
    python3 client.py --addr 127.0.0.1:50051 services
    python3 client.py --addr 127.0.0.1:50051 describe wfl.v1.Ingest
    python3 client.py --addr 127.0.0.1:50051 record hire.json
    python3 client.py --addr 127.0.0.1:50051 subscribe --from 1 --count 10
    python3 client.py --addr 127.0.0.1:50051 view separations --org acme-cn --period quarter

Events given to `record` are protobuf JSON (json_format: `"payload": {"worker_hired": {...}}`,
enums as `EMPLOYMENT_RELATIONSHIP_EMPLOYEE`); docs/events.md maps them to the CLI's dialect.
With auth on, pass --token (sent as `authorization: Bearer ...`); with TLS, --ca.
"""
import argparse
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
# ./gen holds the generated code; ./.deps the requirements when installed with --target.
sys.path.insert(0, os.path.join(here, "gen"))
sys.path.insert(0, os.path.join(here, ".deps"))

import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (  # noqa: E402
    ProtoReflectionDescriptorDatabase,
)
from wfl.v1 import events_pb2, ingest_pb2, ingest_pb2_grpc  # noqa: E402
from wfl.v1 import ledger_pb2, ledger_pb2_grpc, views_pb2, views_pb2_grpc  # noqa: E402

VIEWS = {
    "separations": "Separations",
    "headcount": "Headcount",
    "cohorts": "CohortExposure",
    "hiring": "HiringSignals",
    "ai": "AiAdoption",
}
PERIODS = {"day": views_pb2.PERIOD_DAY, "month": views_pb2.PERIOD_MONTH,
           "quarter": views_pb2.PERIOD_QUARTER}


def as_json(message) -> str:
    return json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True),
                      sort_keys=True)


def channel(args) -> grpc.Channel:
    if args.ca:
        with open(args.ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        return grpc.secure_channel(args.addr, creds)
    return grpc.insecure_channel(args.addr)


def metadata(args):
    return [("authorization", f"Bearer {args.token}")] if args.token else []


def services(args) -> int:
    db = ProtoReflectionDescriptorDatabase(channel(args))
    for name in sorted(db.get_services()):
        print(name)
    return 0


def describe(args) -> int:
    """A service's methods with the comments the .proto files carry (from reflection)."""
    db = ProtoReflectionDescriptorDatabase(channel(args))
    proto = db.FindFileContainingSymbol(args.symbol)
    comments = {}
    for loc in proto.source_code_info.location:
        comments[tuple(loc.path)] = loc.leading_comments.strip()
    for si, service in enumerate(proto.service):
        if f"{proto.package}.{service.name}" != args.symbol:
            continue
        # Paths in source_code_info: 6 = FileDescriptorProto.service, 2 = ServiceDescriptorProto.method.
        print(json.dumps({"service": args.symbol, "comment": comments.get((6, si), "")}))
        for mi, method in enumerate(service.method):
            print(json.dumps({
                "method": method.name,
                "input": method.input_type.lstrip("."),
                "output": method.output_type.lstrip("."),
                "server_streaming": method.server_streaming,
                "comment": comments.get((6, si, 2, mi), ""),
            }))
        return 0
    print(f"client.py: {args.symbol} is not a service", file=sys.stderr)
    return 1


def record(args) -> int:
    with open(args.file) as f:
        event = json_format.Parse(f.read(), events_pb2.Event())
    stub = ingest_pb2_grpc.IngestStub(channel(args))
    try:
        reply = stub.Record(ingest_pb2.RecordRequest(event=event, ack=ingest_pb2.ACK_LEVEL_COMMITTED),
                            metadata=metadata(args))
    except grpc.RpcError as e:
        print(f"client.py: {e.code().name}: {e.details()}", file=sys.stderr)
        return 2
    line = json_format.MessageToDict(reply, preserving_proto_field_name=True)
    line["hash"] = reply.hash.hex()  # protobuf JSON writes bytes as base64; wfl shows hex
    print(json.dumps(line, sort_keys=True))
    return 0


def subscribe(args) -> int:
    """Follows the ledger from --from; checkpoint the last sequence and resume with last + 1."""
    stub = ledger_pb2_grpc.LedgerStub(channel(args))
    request = ledger_pb2.SubscribeRequest(from_sequence=args.from_sequence, org_ids=args.org)
    handled = 0
    stream = stub.Subscribe(request, metadata=metadata(args))
    for reply in stream:
        if not reply.HasField("event"):
            continue  # a heartbeat: nothing matched lately
        committed = reply.event
        print(json.dumps({
            "sequence": committed.sequence,
            "hash": committed.hash.hex(),
            "event_id": committed.event.event_id,
            "org_id": committed.event.org_id,
            "payload_kind": committed.event.payload.WhichOneof("kind"),
        }), flush=True)
        handled += 1
        if args.count and handled >= args.count:
            stream.cancel()
            break
    return 0


def view(args) -> int:
    stub = views_pb2_grpc.ViewsStub(channel(args))
    request = views_pb2.ViewRequest(org_id=args.org, period=PERIODS[args.period],
                                    min_sequence=args.min_sequence)
    reply = getattr(stub, VIEWS[args.view])(request, metadata=metadata(args))
    print(as_json(reply))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--addr", default="127.0.0.1:50051", help="host:port of wfl's gRPC port")
    p.add_argument("--token", default=os.environ.get("WFL_TOKEN", ""))
    p.add_argument("--ca", default="", help="CA certificate (PEM) for a TLS port")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("services", help="list the services (gRPC reflection)")
    d = sub.add_parser("describe", help="a service's methods and their comments (reflection)")
    d.add_argument("symbol", help="e.g. wfl.v1.Ingest")
    r = sub.add_parser("record", help="record one event given as protobuf JSON")
    r.add_argument("file")
    s = sub.add_parser("subscribe", help="follow the ledger (JSON lines)")
    s.add_argument("--from", dest="from_sequence", type=int, default=1)
    s.add_argument("--org", action="append", default=[])
    s.add_argument("--count", type=int, default=0, help="stop after this many (0 = forever)")
    v = sub.add_parser("view", help="one view as JSON")
    v.add_argument("view", choices=sorted(VIEWS))
    v.add_argument("--org", default="")
    v.add_argument("--period", choices=sorted(PERIODS), default="month")
    v.add_argument("--min-sequence", type=int, default=0,
                   help="wait until the views hold this sequence (read your writes)")
    args = p.parse_args()
    return {"services": services, "describe": describe, "record": record,
            "subscribe": subscribe, "view": view}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
