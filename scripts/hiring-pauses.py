#!/usr/bin/env python3
"""Writes hiring pause and resume events as JSON lines for `wfl import`: UNITS org units at two
sites of org ORG, each pausing and resuming on alternate weeks for WEEKS weeks from 2016-01-01
(BENCHMARKS.md, "HiringSignals with 52,000 pauses": 100 units, 520 weeks, 104,000 events).

Usage: scripts/hiring-pauses.py OUT.jsonl [UNITS=100] [WEEKS=520] [ORG=bigco]
"""
import datetime
import json
import sys
import uuid

out_path = sys.argv[1]
units = int(sys.argv[2]) if len(sys.argv) > 2 else 100
weeks = int(sys.argv[3]) if len(sys.argv) > 3 else 520
org = sys.argv[4] if len(sys.argv) > 4 else "bigco"
base = datetime.date(2016, 1, 1)
n = 0
with open(out_path, "w") as out:
    for week in range(weeks):
        for unit in range(units):
            for site in ("hz-1", "sh-1"):
                n += 1
                event = {
                    "event_id": str(uuid.UUID(int=(0x0192F0C48A7E7CC09A52 << 48) | n)),
                    "org_id": org,
                    "site_id": site,
                    "jurisdiction": "CN-33",
                    "effective_date": (base + datetime.timedelta(days=7 * week + unit % 7)).isoformat(),
                    "source": {"system": "workday", "reference": ""},
                }
                if week % 2 == 0:
                    event["payload"] = {"type": "HiringPaused", "scope": f"unit-{unit}",
                                        "reqs_frozen": 3, "reqs_cancelled": 1}
                else:
                    event["payload"] = {"type": "HiringResumed", "scope": f"unit-{unit}",
                                        "reqs_reopened": 2}
                out.write(json.dumps(event) + "\n")
print(f"{n} events written to {out_path}")
