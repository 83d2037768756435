"""Download a file with the reference Python client and time it.

Used by `cargo xtask bench` against smp-sim:

    python smpclient_download.py HOST PORT NAME

Prints one JSON document on stdout: the bytes downloaded and the download time
({"bytes", "seconds"}). The connection is not timed, as for uploads.
"""

import asyncio
import json
import sys
import time

from smpclient import SMPClient

from smpclient_upload import PortTransport


async def main(host: str, port: int, name: str) -> int:
    async with SMPClient(PortTransport(port), host) as client:
        started = time.monotonic()
        data = await client.download_file(name)
        seconds = time.monotonic() - started
    print(json.dumps({"bytes": len(data), "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3])))
