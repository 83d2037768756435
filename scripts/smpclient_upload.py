"""Upload an MCUboot image with the reference Python client, then read the image state.

Used by the interop suite against smp-sim:

    python smpclient_upload.py HOST PORT IMAGE [--upload-only]

Prints one JSON document on stdout: the offsets the upload reported, the upload time,
and the image state read back ({"images": [{"slot", "version", "hash" (hex), ...}]}).
With --upload-only (the loss section of `cargo xtask bench`) the state is not read and
"images" is empty, so that only the upload can fail.
"""

import asyncio
import json
import sys
import time

from smpclient import SMPClient
from smpclient.generics import error, success
from smpclient.requests.image_management import ImageStatesRead
from smpclient.transport.udp import SMPUDPTransport


class PortTransport(SMPUDPTransport):
    """The reference UDP transport, on a port other than 1337."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self._port = port

    async def connect(self, address: str, timeout_s: float, port: int = 1337) -> None:
        await super().connect(address, timeout_s, self._port)


async def main(host: str, port: int, path: str, read_state: bool) -> int:
    with open(path, "rb") as f:
        image = f.read()
    async with SMPClient(PortTransport(port), host) as client:
        started = time.monotonic()
        offsets = [off async for off in client.upload(image)]
        seconds = time.monotonic() - started
        if not read_state:
            print(json.dumps({"offsets": offsets, "seconds": seconds, "images": []}))
            return 0
        state = await client.request(ImageStatesRead())
        if error(state) or not success(state):
            print(f"image state read failed: {state}", file=sys.stderr)
            return 1
        images = [
            {
                "slot": i.slot,
                "version": i.version,
                "hash": i.hash.hex() if i.hash else None,
                "bootable": i.bootable,
                "pending": i.pending,
                "confirmed": i.confirmed,
                "active": i.active,
                "permanent": i.permanent,
            }
            for i in state.images
        ]
    print(json.dumps({"offsets": offsets, "seconds": seconds, "images": images}))
    return 0


if __name__ == "__main__":
    read_state = sys.argv[4:] != ["--upload-only"]
    sys.exit(asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], read_state)))
