#!/usr/bin/env bash
# Regenerates the imgtool fixtures of smp-mcuboot's tests, crates/smp-mcuboot/tests/data/,
# from body.bin: 1000 bytes, byte i = (7 * i + 3) mod 256 (the tests compute it the same way).
#
#   unsigned.bin     imgtool create --version 1.2.3+4 --header-size 0x200
#                      --slot-size 0x40000 --pad-header body.bin unsigned.bin
#   seccnt7.bin      the same with --security-counter 7
#
# crates/smp-mcuboot/tests/imgtool.rs parses them and checks that ImageBuilder, given the
# same body and settings, writes the same bytes. The fixtures were made with imgtool 2.5.0
# (PyPI), which this script installs into a venv unless one is given:
#
#   scripts/make_test_image.sh            # rewrite the fixtures
#   scripts/make_test_image.sh --check    # fail if imgtool's output differs from them
#   IMGTOOL_VENV=/tmp/venv scripts/make_test_image.sh   # use or create another venv
#
# The default venv is target/imgtool-venv (ignored by git; `cargo clean` removes it).
set -euo pipefail

IMGTOOL_VERSION=2.5.0
root=$(cd "$(dirname "$0")/.." && pwd)
data=$root/crates/smp-mcuboot/tests/data
venv=${IMGTOOL_VENV:-$root/target/imgtool-venv}

check=false
case "${1:-}" in
    "") ;;
    --check) check=true ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

if [ ! -x "$venv/bin/imgtool" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "imgtool==$IMGTOOL_VERSION"
fi
found=$("$venv/bin/imgtool" version)
if [ "$found" != "$IMGTOOL_VERSION" ]; then
    echo "$venv has imgtool $found, the fixtures are from $IMGTOOL_VERSION" >&2
    exit 1
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$venv/bin/python" -c '
import sys
sys.stdout.buffer.write(bytes((7 * i + 3) % 256 for i in range(1000)))
' >"$out/body.bin"

create() {
    "$venv/bin/imgtool" create --version 1.2.3+4 --header-size 0x200 --slot-size 0x40000 \
        --pad-header "$@"
}
create "$out/body.bin" "$out/unsigned.bin"
create --security-counter 7 "$out/body.bin" "$out/seccnt7.bin"

status=0
for name in unsigned.bin seccnt7.bin; do
    if $check; then
        if ! cmp -s "$out/$name" "$data/$name"; then
            echo "$data/$name differs from imgtool's output" >&2
            status=1
        fi
    else
        mkdir -p "$data"
        cp "$out/$name" "$data/$name"
        echo "wrote $data/$name ($(wc -c <"$data/$name") bytes)"
    fi
done
exit $status
