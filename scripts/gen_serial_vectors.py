#!/usr/bin/env python3
"""Golden serial-framing vectors from the Python reference (`smpclient` 7.3.0, `smp` 4.2.0).

Every vector comes out of the reference's own code: the console and raw transports'
`send()` (with a connection that records what they write instead of a serial port),
their sizing properties (`max_unencoded_size`, `mtu`), the COBS framing's
`cobs_encode`/`Cobs.encode`/`Cobs.take`, and `smp.packet`'s `decode` and CRC. One vector
per line, fields separated by spaces, bytes in hex (`-` for none):

    crc16 <data> <crc16>
    console <line_length> <lines written> <frame> <bytes on the wire>
    console_decode <bytes on the wire> <frame>
    raw <frame> <bytes on the wire>
    cobs <data> <cobs_encode(data)>
    cobs_frame <frame> <bytes on the wire>
    cobs_take <bytes on the wire> <frame>
    size_lines <line_length> <line_buffers> <max_unencoded_size> <mtu>   (BufferParams;
                                              `refused -` where the reference refuses them)
    size_buf <buf_size> <max_unencoded_size> <mtu>                     (BufferSize)
    size_auto <max_unencoded_size> <mtu>                  (Auto, before the params are read)
    size_raw <buf_size or -> <max_unencoded_size> <mtu>   (SMPSerialRawTransport, initialize)

to crates/smp-serial/src/vectors.txt, which the Rust test `vectors` reads and checks
against smp-serial's encoders, deframers and sizing.

It needs a venv with the reference and pyserial (the serial transports import it):

    python3 -m venv /tmp/serial-venv
    /tmp/serial-venv/bin/pip install 'smpclient[serial]==7.3.0' 'smp==4.2.0'
    /tmp/serial-venv/bin/python scripts/gen_serial_vectors.py          # rewrite the file
    /tmp/serial-venv/bin/python scripts/gen_serial_vectors.py --check  # fail if it differs
"""

from __future__ import annotations

import asyncio
import sys
from importlib.metadata import version
from pathlib import Path

from smp import packet as smppacket

try:
    from smpclient.transport.serial import (
        Auto,
        BufferParams,
        BufferSize,
        SMPSerialRawTransport,
        SMPSerialTransport,
    )
    from smpclient.transport.serial.framing.cobs import Cobs, cobs_encode
except ImportError as e:  # pyserial is an extra of smpclient
    sys.exit(f"cannot import smpclient's serial transports ({e}): install 'smpclient[serial]'")

OUT = Path(__file__).resolve().parent.parent / "crates/smp-serial/src/vectors.txt"


def pattern(n: int, seed: int = 0) -> bytes:
    """Deterministic test bytes."""
    return bytes((i * 7 + seed) & 0xFF for i in range(n))


def smp_frame(op: int, group: int, seq: int, command: int, payload: bytes) -> bytes:
    """An SMP v2 frame: 8-byte header and payload."""
    return (
        bytes([0x08 | op, 0])
        + len(payload).to_bytes(2, "big")
        + group.to_bytes(2, "big")
        + bytes([seq, command])
        + payload
    )


ECHO = bytes.fromhex("0a00000900000000a161646568656c6c6f")  # EchoWrite(d="hello"), seq 0
PARAMS = bytes.fromhex("0800000100000006a0")  # MCUMgrParametersRead, seq 0
ZEPHYR_REPLY = bytes.fromhex("0b00000700000100bf6172626869ff")  # {r: "hi"}, indefinite map
FRAMES = [
    ECHO,
    PARAMS,
    ZEPHYR_REPLY,
    b"",
    b"\x00",
    smp_frame(2, 0, 0x2A, 0, b"\xa1\x61\x64\x78\x18" + b"x" * 24),  # a 38-byte echo
    smp_frame(2, 0, 7, 0, b"\xa1\x61\x64\x79\x01\x2c" + b"Z" * 300),  # a 314-byte echo
    smp_frame(3, 8, 0xFF, 0, pattern(372, 3)),  # fills a 384-byte buffer with its CRC...
    pattern(1000, 5),
]
LINE_LENGTHS = [128, 8, 9, 16, 64, 127, 129, 512]


class Recorder:
    """Stands in for pyserial's `Serial`: keeps each write, never has bytes waiting."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.out_waiting = 0

    def write(self, data: bytes) -> int:
        self.writes.append(bytes(data))
        return len(data)


def sent(transport, frame: bytes) -> list[bytes]:
    """What `transport.send(frame)` writes, write by write."""
    recorder = Recorder()
    object.__setattr__(transport, "_conn", recorder)  # `_conn` is Final on the base class
    asyncio.run(transport.send(frame))
    return recorder.writes


def hexed(data: bytes) -> str:
    return data.hex() if data else "-"


def vectors() -> list[str]:
    v: list[str] = []
    for data in [b"", b"123456789", ECHO, PARAMS, pattern(300)]:
        v.append(f"crc16 {hexed(data)} {smppacket.crc16_func(data):04x}")

    for line_length in LINE_LENGTHS:
        transport = SMPSerialTransport(
            fragmentation_strategy=BufferSize(buf_size=4096, line_length=line_length)
        )
        for frame in FRAMES:
            writes = sent(transport, frame)
            v.append(
                f"console {line_length} {len(writes)} {hexed(frame)} {hexed(b''.join(writes))}"
            )

    # `smp.packet.decode`, fed the lines of its own docstring example and of our frames.
    docstring_packets = [
        "06094148344b41414230414147610a", "041441615a6a6247567544574e760a",
        "04145a6d59594b6d4e7a6147464d0a", "041464484a3163335167625755670a",
        "0414596e4a765a475268644746590a", "04145141414241674d45425159480a",
        "041443416b4b4377774e446738510a", "041445524954464255574678675a0a",
        "04144768736348523466494345690a", "04144979516c4a69636f4b536f720a",
        "04144c4330754c7a41784d6a4d300a", "04144e5459334f446b364f7a77390a",
        "0414506a396c615731685a3255410a", "04145a3356775a334a685a4758300a",
        "04147134673d0a",
    ]
    streams = [[bytes.fromhex(p) for p in docstring_packets]]
    streams += [list(smppacket.encode(frame, line_length=64)) for frame in FRAMES[:3]]
    for packets in streams:
        decoder = smppacket.decode()
        next(decoder)
        frame = None
        for packet in packets:
            try:
                decoder.send(packet)
            except StopIteration as done:
                frame = bytes(done.value)
        assert frame is not None
        v.append(f"console_decode {hexed(b''.join(packets))} {hexed(frame)}")

    raw = SMPSerialRawTransport(mtu=4096)
    for frame in [ECHO, PARAMS, FRAMES[7]]:
        v.append(f"raw {hexed(frame)} {hexed(b''.join(sent(raw, frame)))}")

    cobs_inputs = [
        b"", b"\x00", b"\x00\x00", bytes(10), b"\x01\x02\x03", b"\x11\x00\x22",
        bytes([0xFF]) * 253, bytes([0xFF]) * 254, bytes([0xFF]) * 255, bytes([0xFF]) * 508,
        bytes(range(256)), b"\x00leading\x00and\x00trailing\x00", pattern(600, 1),
    ]
    for data in cobs_inputs:
        v.append(f"cobs {hexed(data)} {hexed(cobs_encode(data))}")
    cobs_raw = SMPSerialRawTransport(mtu=4096, framing=Cobs())
    for frame in [ECHO, PARAMS, ZEPHYR_REPLY, FRAMES[7], pattern(600, 2)]:
        v.append(f"cobs_frame {hexed(frame)} {hexed(b''.join(sent(cobs_raw, frame)))}")
    # A stream of two frames with noise and a stray delimiter between them.
    stream = b"".join(Cobs().encode(ECHO)) + b"\x00\x13\x37\x00" + b"".join(Cobs().encode(PARAMS))
    framing = Cobs()
    framing.feed(stream)
    taken = []
    while (message := framing.take()) is not None:
        taken.append(bytes(message))
    v.append(f"cobs_take {hexed(stream)} {' '.join(hexed(m) for m in taken)}")

    for line_length, line_buffers in [
        (128, 1), (128, 2), (128, 3), (128, 4), (128, 8), (512, 1), (512, 2), (512, 4),
        (64, 2), (16, 2), (16, 8), (8, 100), (1000, 70),
    ]:
        try:
            t = SMPSerialTransport(fragmentation_strategy=BufferParams(line_length, line_buffers))
        except ValueError:  # the reference refuses settings that carry no byte
            v.append(f"size_lines {line_length} {line_buffers} refused -")
            continue
        v.append(f"size_lines {line_length} {line_buffers} {t.max_unencoded_size} {t.mtu}")
    for buf_size in [12, 96, 128, 256, 384, 400, 512, 1024, 2048, 2475, 65535]:
        t = SMPSerialTransport(fragmentation_strategy=BufferSize(buf_size))
        v.append(f"size_buf {buf_size} {t.max_unencoded_size} {t.mtu}")
    t = SMPSerialTransport()
    v.append(f"size_auto {t.max_unencoded_size} {t.mtu}")
    t = SMPSerialRawTransport()
    v.append(f"size_raw - {t.max_unencoded_size} {t.mtu}")
    for buf_size in [96, 1024, 2048]:
        t = SMPSerialRawTransport()
        t.initialize(buf_size)
        v.append(f"size_raw {buf_size} {t.max_unencoded_size} {t.mtu}")
    return v


def main() -> int:
    lines = [
        f"# Serial framing vectors from the Python reference smpclient {version('smpclient')}, "
        f"smp {version('smp')}.",
        "# Generated by scripts/gen_serial_vectors.py; do not edit by hand.",
        *vectors(),
    ]
    text = "\n".join(lines) + "\n"
    if "--check" in sys.argv[1:]:
        if OUT.read_text() != text:
            print(
                f"{OUT} differs from what the reference produces: "
                "run scripts/gen_serial_vectors.py and review the diff",
                file=sys.stderr,
            )
            return 1
        print(f"{len(lines) - 2} vectors in {OUT.name} match the reference", file=sys.stderr)
        return 0
    OUT.write_text(text)
    print(f"wrote {len(lines) - 2} vectors to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
