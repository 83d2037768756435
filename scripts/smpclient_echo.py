"""Time sequential echo requests with the reference Python client.

Used by `cargo xtask bench` against smp-sim:

    python smpclient_echo.py HOST PORT COUNT SIZE

Sends 50 untimed echoes of SIZE characters, then COUNT timed ones, one at a time, and
prints one JSON document on stdout: {"client", "size", "round_trip": {"count",
"median_us", "p90_us", "min_us", "mean_us"}}, percentiles by nearest rank.
"""

import asyncio
import json
import math
import sys
import time

from smpclient import SMPClient
from smpclient.generics import error, success
from smpclient.requests.os_management import EchoWrite

from smpclient_upload import PortTransport

WARMUP = 50


def rank(samples: list[float], q: float) -> float:
    """The nearest-rank percentile of sorted `samples`."""
    i = min(max(math.ceil(q * len(samples)), 1), len(samples)) - 1
    return samples[i]


async def main(host: str, port: int, count: int, size: int) -> int:
    text = "x" * size
    samples = []
    async with SMPClient(PortTransport(port), host) as client:
        for i in range(WARMUP + count):
            started = time.perf_counter_ns()
            reply = await client.request(EchoWrite(d=text))
            elapsed = time.perf_counter_ns() - started
            if error(reply) or not success(reply) or reply.r != text:
                print(f"echo {i} failed: {reply}", file=sys.stderr)
                return 1
            if i >= WARMUP:
                samples.append(elapsed / 1000)
    samples.sort()
    round_trip = {
        "count": len(samples),
        "median_us": rank(samples, 0.5),
        "p90_us": rank(samples, 0.9),
        "min_us": samples[0],
        "mean_us": sum(samples) / len(samples),
    }
    print(json.dumps({"client": "smpclient", "size": size, "round_trip": round_trip}))
    return 0


if __name__ == "__main__":
    host, port, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    sys.exit(asyncio.run(main(host, port, count, size)))
