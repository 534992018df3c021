#!/bin/sh
# fuzz/build.sh [OUTDIR] -- build the libFuzzer targets of mod_certauthz:
#   OUTDIR/fuzz_map, OUTDIR/fuzz_dn, OUTDIR/fuzz_facts
# (clang, -fsanitize=fuzzer,address,undefined) and their sanitized replay
# twins OUTDIR/replay_map, replay_dn, replay_facts (same sanitizers, no
# libFuzzer: `replay_map DIR...` runs a corpus or a reproducer as TAP).
# The core (src/*.c) is compiled straight into each binary with the same
# flags, plus fuzz/pool_debug.c, which gives every pool allocation its own
# malloc block so that AddressSanitizer sees overflows of pool buffers.
#
# OUTDIR defaults to fuzz/out.  Environment: CC (default clang),
# FUZZ_CFLAGS (extra flags, e.g. -O2).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
out=${1:-$here/out}
CC=${CC:-clang}

mkdir -p "$out/obj"
out=$(cd "$out" && pwd)

san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cflags="-g -O1 -fno-omit-frame-pointer -std=gnu99 -Wall -Wextra -Wno-unused-parameter $san ${FUZZ_CFLAGS:-}"
cppflags="-I$top/include $(apr-1-config --cflags --cppflags --includes) $(apu-1-config --includes) $(pkg-config --cflags openssl libpcre2-8)"
libs="$(apr-1-config --link-ld) $(apu-1-config --link-ld) -lssl -lcrypto -lpcre2-8 -ldl"

echo "fuzz/build.sh: compiling the core with $CC into $out"
core=""
for src in "$top"/src/*.c; do
    obj="$out/obj/$(basename "$src" .c).o"
    # the core gets -fsanitize=fuzzer-no-link: coverage feedback from it
    $CC $cflags -fsanitize=fuzzer-no-link $cppflags -c "$src" -o "$obj"
    core="$core $obj"
done
# no coverage from the allocator shim: it would only add noise
$CC $cflags $cppflags -c "$here/pool_debug.c" -o "$out/obj/pool_debug.o"
core="$core $out/obj/pool_debug.o"

$CC $cflags $cppflags -c "$here/replay.c" -o "$out/obj/replay.o"
for t in map dn facts; do
    $CC $cflags -fsanitize=fuzzer-no-link $cppflags -I"$here" \
        -c "$here/fuzz_$t.c" -o "$out/obj/fuzz_$t.o"
    # libFuzzer binary
    $CC $cflags -fsanitize=fuzzer "$out/obj/fuzz_$t.o" $core $libs \
        -o "$out/fuzz_$t"
    # replay twin: same sanitizers, plain main()
    $CC $cflags "$out/obj/replay.o" "$out/obj/fuzz_$t.o" $core $libs \
        -o "$out/replay_$t"
    echo "  $out/fuzz_$t  $out/replay_$t"
done
