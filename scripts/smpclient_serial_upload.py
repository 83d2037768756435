"""Upload an MCUboot image over a serial port with the reference Python client.

Used by the serial section of `cargo xtask bench`:

    python smpclient_serial_upload.py PORT IMAGE [--line-buffers N] [--timeout S]
                                      [--tune-socket]

PORT is a pseudo-terminal (`/dev/pts/N`) or an emulator's TCP serial chardev
(`socket://HOST:PORT`). The transport is the reference's `SMPSerialTransport`
(console framing). Frames are sized by its default strategy, `Auto` (the device's
`buf_size` from its MCUmgr parameters), or with `--line-buffers N` by
`BufferParams(line_length=128, line_buffers=N)`: the reference's own setting for a
device whose constraint is a small pool of line buffers (it never paces lines).

`SMPSerialTransport.connect` opens PORT with pyserial's `Serial`, which takes device
paths only. For `socket://` the transport is backed by `serial_for_url` instead, as the
reference's own integration suite does for its emulated fixtures
(`tests/integration/servers.py`, `QemuSocketSerialTransport`): `connect` is the only
difference, so framing, sizing, `send` and `receive` are the reference's own.
`--tune-socket` sets that socket up as our client sets up its own (see `Counted`).

Prints one JSON document on stdout: the upload time (the upload alone, not connecting),
the offsets' count, the bytes written to and read from the port during the upload
(framing included), the number of writes, and the process's CPU time meanwhile.
"""

import argparse
import asyncio
import json
import socket
import sys
import time

import serial as pyserial
from smpclient import SMPClient
from smpclient.transport.serial import BufferParams, SMPSerialTransport


class SocketSerialTransport(SMPSerialTransport):
    """`SMPSerialTransport` over a `socket://` URL (an emulator's serial chardev)."""

    def __init__(self, url, **kwargs):
        super().__init__(**kwargs)
        self._url = url

    async def connect(self, address, timeout_s):
        self._reset_state()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                conn = pyserial.serial_for_url(self._url, timeout=0, write_timeout=0)
                break
            except (OSError, pyserial.SerialException):
                if loop.time() >= deadline:
                    raise TimeoutError(f"{self._url} never accepted")
                await asyncio.sleep(self._CONNECTION_RETRY_INTERVAL_S)
        # `_conn` is `Final` on the base class; replaced as the reference's suite does.
        object.__setattr__(self, "_conn", conn)
        # pyserial's socket backend has no `out_waiting`; nothing waits to be drained.
        object.__setattr__(conn, "out_waiting", 0)


class Counted:
    """Counts the bytes and calls of a pyserial port's `write` and `read_all`.

    With `tune`, a `socket://` port is also set up as our client sets up its own:
    `TCP_NODELAY` (lines go out as written) and `TCP_QUICKACK` after every read (an
    emulator writes replies in pieces with Nagle's algorithm on, and each piece after
    the first waits for our acknowledgement, which Linux otherwise delays).
    """

    def __init__(self, conn, tune=False):
        self.written = 0
        self.read = 0
        self.writes = 0
        write, read_all = conn.write, conn.read_all

        def counted_write(data):
            self.written += len(data)
            self.writes += 1
            return write(data)

        sock = getattr(conn, "_socket", None) if tune else None
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def counted_read_all():
            data = read_all()
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            if data:
                self.read += len(data)
            return data

        object.__setattr__(conn, "write", counted_write)
        object.__setattr__(conn, "read_all", counted_read_all)


async def main(args) -> int:
    with open(args.image, "rb") as f:
        image = f.read()
    kwargs = {}
    if args.line_buffers is not None:
        kwargs["fragmentation_strategy"] = BufferParams(
            line_length=128, line_buffers=args.line_buffers
        )
    if args.port.startswith("socket://"):
        transport = SocketSerialTransport(args.port, **kwargs)
    else:
        transport = SMPSerialTransport(**kwargs)
    async with SMPClient(transport, args.port, timeout_s=args.timeout) as client:
        counted = Counted(transport._conn, args.tune_socket)
        cpu = time.process_time()
        started = time.monotonic()
        offsets = [
            off
            async for off in client.upload(
                image, first_timeout_s=40.0, subsequent_timeout_s=args.timeout
            )
        ]
        seconds = time.monotonic() - started
        cpu = time.process_time() - cpu
    print(
        json.dumps(
            {
                "bytes": len(image),
                "seconds": seconds,
                "requests": len(offsets),
                "bytes_written": counted.written,
                "bytes_read": counted.read,
                "writes": counted.writes,
                "cpu_seconds": cpu,
                "max_unencoded_size": transport.max_unencoded_size,
                "line_length": transport._line_length,
            }
        )
    )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port")
    parser.add_argument("image")
    parser.add_argument("--line-buffers", type=int)
    parser.add_argument("--timeout", type=float, default=2.5)
    parser.add_argument("--tune-socket", action="store_true")
    sys.exit(asyncio.run(main(parser.parse_args())))
