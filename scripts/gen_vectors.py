#!/usr/bin/env python3
"""Golden SMP frames from the Python reference (`smp` 4.2.0) for smp-client's tests.

Builds one request of every command (optional fields set and unset) and a set of
responses with the reference's own message classes, and writes one line per frame:

    <name> <hex of the whole frame: 8-byte header + canonical CBOR payload>

to crates/smp-proto/src/messages/vectors.txt. Every frame uses SMP version 2 and
sequence 0. The Rust test `messages::vectors` builds the same messages from the same
values and compares bytes, so a value changed here must change there too.

Run with the interop venv (it has smp==4.2.0):

    target/interop/venv/bin/python scripts/gen_vectors.py          # rewrite the file
    target/interop/venv/bin/python scripts/gen_vectors.py --check  # fail if it differs

`cargo xtask interop` runs the check, so CI compares the checked-in vectors with what
the reference package produces on every run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import smp
from smp import enumeration_management as enm
from smp import file_management as fsm
from smp import image_management as img
from smp import os_management as osm
from smp import settings_management as setm
from smp import shell_management as shm
from smp import statistics_management as stm
from smp import zephyr_management as zm

OUT = Path(__file__).resolve().parent.parent / "crates/smp-proto/src/messages/vectors.txt"


def pattern(n: int, seed: int = 0) -> bytes:
    """Deterministic test bytes; the Rust test has the same function."""
    return bytes((i * 7 + seed) & 0xFF for i in range(n))


SHA = pattern(32, 0x55)
# An image's first chunk starts with the MCUboot magic 0x96f3b83d (little-endian).
FIRST_CHUNK = bytes.fromhex("3db8f396") + pattern(60, 1)


def vectors() -> list[tuple[str, object]]:
    v: list[tuple[str, object]] = []
    # --- OS (group 0) -----------------------------------------------------------------
    v.append(("os_echo", osm.EchoWriteRequest(d="hello", sequence=0)))
    v.append(("os_echo_empty", osm.EchoWriteRequest(d="", sequence=0)))
    v.append(("os_echo_long", osm.EchoWriteRequest(d="x" * 300, sequence=0)))
    v.append(("os_taskstat", osm.TaskStatisticsReadRequest(sequence=0)))
    v.append(("os_mpstat", osm.MemoryPoolStatisticsReadRequest(sequence=0)))
    v.append(("os_datetime_read", osm.DateTimeReadRequest(sequence=0)))
    v.append(
        ("os_datetime_write", osm.DateTimeWriteRequest(datetime="2025-01-02T03:04:05", sequence=0))
    )
    v.append(("os_reset", osm.ResetWriteRequest(sequence=0)))
    v.append(("os_reset_force", osm.ResetWriteRequest(force=1, sequence=0)))
    v.append(
        ("os_reset_force_boot_mode", osm.ResetWriteRequest(force=1, boot_mode=1, sequence=0))
    )
    v.append(("os_reset_boot_mode", osm.ResetWriteRequest(boot_mode=200, sequence=0)))
    v.append(("os_mcumgr_params", osm.MCUMgrParametersReadRequest(sequence=0)))
    v.append(("os_info", osm.OSApplicationInfoReadRequest(sequence=0)))
    v.append(("os_info_format", osm.OSApplicationInfoReadRequest(format="snrv", sequence=0)))
    v.append(("os_bootloader_info", osm.BootloaderInformationReadRequest(sequence=0)))
    v.append(
        ("os_bootloader_info_mode", osm.BootloaderInformationReadRequest(query="mode", sequence=0))
    )
    # --- Image (group 1) --------------------------------------------------------------
    v.append(("image_state_read", img.ImageStatesReadRequest(sequence=0)))
    v.append(("image_state_confirm", img.ImageStatesWriteRequest(confirm=True, sequence=0)))
    v.append(
        ("image_state_test", img.ImageStatesWriteRequest(hash=SHA, confirm=False, sequence=0))
    )
    v.append(
        (
            "image_upload_first",
            img.ImageUploadWriteRequest(
                off=0,
                data=FIRST_CHUNK,
                len=429552,
                sha=SHA,
                image=0,
                upgrade=False,
                sequence=0,
            ),
        )
    )
    v.append(
        (
            "image_upload_first_upgrade",
            img.ImageUploadWriteRequest(
                off=0, data=FIRST_CHUNK, len=70000, image=1, upgrade=True, sequence=0
            ),
        )
    )
    v.append(
        (
            "image_upload_next",
            img.ImageUploadWriteRequest(off=1387, data=pattern(100, 2), sequence=0),
        )
    )
    v.append(
        (
            "image_upload_far",
            img.ImageUploadWriteRequest(off=200000, data=pattern(300, 3), sequence=0),
        )
    )
    v.append(("image_erase", img.ImageEraseRequest(sequence=0)))
    v.append(("image_erase_slot", img.ImageEraseRequest(slot=1, sequence=0)))
    # --- Statistics (group 2) ---------------------------------------------------------
    v.append(("stat_group_data", stm.GroupDataRequest(name="smp_svr_stats", sequence=0)))
    v.append(("stat_list", stm.ListOfGroupsRequest(sequence=0)))
    # --- Settings (group 3) -----------------------------------------------------------
    v.append(("settings_read", setm.ReadSettingRequest(name="app/name", sequence=0)))
    v.append(
        ("settings_read_max", setm.ReadSettingRequest(name="app/name", max_size=64, sequence=0))
    )
    v.append(
        (
            "settings_write",
            setm.WriteSettingRequest(name="app/name", val=b"\x01\x02\xff", sequence=0),
        )
    )
    v.append(("settings_delete", setm.DeleteSettingRequest(name="app/name", sequence=0)))
    v.append(("settings_commit", setm.CommitSettingsRequest(sequence=0)))
    v.append(("settings_load", setm.LoadSettingsRequest(sequence=0)))
    v.append(("settings_save", setm.SaveSettingsRequest(sequence=0)))
    # --- File system (group 8) --------------------------------------------------------
    v.append(("fs_download", fsm.FileDownloadRequest(name="/lfs1/a.txt", off=0, sequence=0)))
    v.append(
        ("fs_download_later", fsm.FileDownloadRequest(name="/lfs1/a.txt", off=4096, sequence=0))
    )
    v.append(
        (
            "fs_upload_first",
            fsm.FileUploadRequest(
                name="/lfs1/a.txt", off=0, data=pattern(40, 4), len=1000, sequence=0
            ),
        )
    )
    v.append(
        (
            "fs_upload_next",
            fsm.FileUploadRequest(name="/lfs1/a.txt", off=40, data=pattern(30, 5), sequence=0),
        )
    )
    v.append(("fs_status", fsm.FileStatusRequest(name="/lfs1/a.txt", sequence=0)))
    v.append(("fs_hash", fsm.FileHashChecksumRequest(name="/lfs1/a.txt", sequence=0)))
    v.append(
        (
            "fs_hash_all",
            fsm.FileHashChecksumRequest(
                name="/lfs1/a.txt", type="sha256", off=10, len=100, sequence=0
            ),
        )
    )
    v.append(("fs_supported_hashes", fsm.SupportedFileHashChecksumTypesRequest(sequence=0)))
    v.append(("fs_close", fsm.FileCloseRequest(sequence=0)))
    # --- Shell (group 9) --------------------------------------------------------------
    v.append(("shell_exec", shm.ExecuteRequest(argv=["kernel", "uptime"], sequence=0)))
    v.append(("shell_exec_empty", shm.ExecuteRequest(argv=[], sequence=0)))
    # --- Enumeration (group 10) -------------------------------------------------------
    v.append(("enum_count", enm.GroupCountRequest(sequence=0)))
    v.append(("enum_list", enm.ListOfGroupsRequest(sequence=0)))
    v.append(("enum_single", enm.GroupIdRequest(sequence=0)))
    v.append(("enum_single_index", enm.GroupIdRequest(index=3, sequence=0)))
    v.append(("enum_details", enm.GroupDetailsRequest(sequence=0)))
    v.append(("enum_details_groups", enm.GroupDetailsRequest(groups=(0, 1, 63, 64), sequence=0)))
    # --- Zephyr (group 63) ------------------------------------------------------------
    v.append(("zephyr_erase_storage", zm.EraseStorageRequest(sequence=0)))

    # --- Responses, as a server would encode them canonically ---------------------------
    v.append(("rsp_os_echo", osm.EchoWriteResponse(r="hi", sequence=0)))
    v.append(
        (
            "rsp_os_taskstat",
            osm.TaskStatisticsReadResponse(
                tasks={
                    "idle": osm.TaskStatisticsZephyr(prio=15, tid=1, state=0, stkuse=40, stksiz=64),
                    "main": osm.TaskStatisticsZephyr(
                        prio=-1, tid=2, state=8, stkuse=100, stksiz=256, cswcnt=7, runtime=1234
                    ),
                    "logging": osm.TaskStatisticsZephyr(prio=14, tid=3, state=2),
                },
                sequence=0,
            ),
        )
    )
    v.append(
        (
            "rsp_os_mpstat",
            osm.MemoryPoolStatisticsReadResponse(
                **{
                    "pool0": {"blksize": 32, "nblks": 8, "nfree": 3, "min": 1},
                    "big": {"blksize": 4096, "nblks": 2, "nfree": 2, "min": 0},
                },
                sequence=0,
            ),
        )
    )
    v.append(
        ("rsp_os_datetime", osm.DateTimeReadResponse(datetime="2025-01-02T03:04:05", sequence=0))
    )
    v.append(("rsp_empty", osm.ResetWriteResponse(sequence=0)))
    v.append(
        ("rsp_os_mcumgr_params", osm.MCUMgrParametersReadResponse(buf_size=2048, buf_count=2, sequence=0))
    )
    v.append(
        ("rsp_os_info", osm.OSApplicationInfoReadResponse(output="Zephyr", sequence=0))
    )
    v.append(
        ("rsp_os_bootloader_info", osm.BootloaderInformationReadResponse(bootloader="MCUboot", sequence=0))
    )
    v.append(
        (
            "rsp_image_state",
            img.ImageStatesReadResponse(
                images=[
                    img.ImageState(
                        image=0,
                        slot=0,
                        version="1.2.3",
                        hash=SHA,
                        bootable=True,
                        confirmed=True,
                        active=True,
                    ),
                    img.ImageState(slot=1, version="1.3.0", pending=True, permanent=False),
                ],
                splitStatus=0,
                sequence=0,
            ),
        )
    )
    v.append(("rsp_image_upload", img.ImageUploadWriteResponse(off=1387, sequence=0)))
    v.append(
        ("rsp_image_upload_match", img.ImageUploadWriteResponse(off=429552, match=True, sequence=0))
    )
    v.append(
        (
            "rsp_stat_group_data",
            stm.GroupDataResponse(
                name="smp_svr_stats", fields={"stat1": 3, "s0": 70000, "stat0": 0}, sequence=0
            ),
        )
    )
    v.append(
        ("rsp_stat_list", stm.ListOfGroupsResponse(stat_list=("smp_svr_stats", "net"), sequence=0))
    )
    v.append(("rsp_settings_read", setm.ReadSettingResponse(val=b"abc", sequence=0)))
    v.append(
        (
            "rsp_fs_download",
            fsm.FileDownloadResponse(off=0, data=pattern(20, 6), len=1000, sequence=0),
        )
    )
    v.append(("rsp_fs_upload", fsm.FileUploadResponse(off=40, sequence=0)))
    v.append(("rsp_fs_status", fsm.FileStatusResponse(len=1000, sequence=0)))
    v.append(
        (
            "rsp_fs_hash_sha256",
            fsm.FileHashChecksumResponse(type="sha256", len=1000, output=SHA, sequence=0),
        )
    )
    v.append(
        (
            "rsp_fs_hash_crc32",
            fsm.FileHashChecksumResponse(
                type="crc32", off=10, len=100, output=0xDEADBEEF, sequence=0
            ),
        )
    )
    v.append(
        (
            "rsp_fs_supported_hashes",
            fsm.SupportedFileHashChecksumTypesResponse(
                types={
                    "sha256": fsm.HashChecksumType(format=1, size=32),
                    "crc32": fsm.HashChecksumType(format=0, size=4),
                },
                sequence=0,
            ),
        )
    )
    v.append(("rsp_shell_exec", shm.ExecuteResponse(o="uptime: 42", ret=0, sequence=0)))
    v.append(("rsp_enum_count", enm.GroupCountResponse(count=4, sequence=0)))
    v.append(("rsp_enum_list", enm.ListOfGroupsResponse(groups=(0, 2, 9, 63), sequence=0)))
    v.append(("rsp_enum_single", enm.GroupIdResponse(group=63, end=True, sequence=0)))
    v.append(
        (
            "rsp_enum_details",
            enm.GroupDetailsResponse(
                groups=(
                    enm.GroupDetails(group=0, name="os mgmt", handlers=9),
                    enm.GroupDetails(group=64),
                ),
                sequence=0,
            ),
        )
    )
    return v


def main() -> int:
    lines = [
        "# Golden SMP frames (v2, sequence 0) from the Python reference smp "
        f"{getattr(smp, '__version__', '4.2.0')}.",
        "# Generated by scripts/gen_vectors.py; do not edit by hand.",
        "# <name> <hex of header + CBOR payload>",
    ]
    names = set()
    for name, message in vectors():
        assert name not in names, name
        names.add(name)
        lines.append(f"{name} {message.BYTES.hex()}")
    text = "\n".join(lines) + "\n"
    if "--check" in sys.argv[1:]:
        if OUT.read_text() != text:
            print(f"{OUT} differs from what smp {smp_version()} produces: "
                  "run scripts/gen_vectors.py and review the diff", file=sys.stderr)
            return 1
        print(f"{len(names)} vectors in {OUT.name} match smp {smp_version()}", file=sys.stderr)
        return 0
    OUT.write_text(text)
    print(f"wrote {len(names)} vectors to {OUT}", file=sys.stderr)
    return 0


def smp_version() -> str:
    from importlib.metadata import version

    return version("smp")


if __name__ == "__main__":
    sys.exit(main())
