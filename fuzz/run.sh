#!/bin/sh
# fuzz/run.sh TARGET SECONDS [OUTDIR] [libFuzzer options...]
#   TARGET: map, dn or facts.  Runs OUTDIR/fuzz_TARGET (default fuzz/out;
#   built by fuzz/build.sh) for SECONDS on a copy of fuzz/corpus/TARGET, in
#   one process (no -jobs/-workers).  New inputs go to the copy
#   (OUTDIR/work/TARGET), never into the committed corpus; crashes, leaks
#   and timeouts are written to OUTDIR/artifacts/TARGET/.  Exit status:
#   libFuzzer's (0 = nothing found).  Extra arguments go to libFuzzer
#   (e.g. -runs=N, -use_value_profile=1).  FUZZ_RESUME=1 continues on the
#   work corpus of an earlier run instead of starting from the seeds.
#
#   Add findings to the seed corpus by hand, minimised:
#     OUTDIR/fuzz_TARGET -merge=1 fuzz/corpus/TARGET OUTDIR/work/TARGET
set -eu

here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: $0 map|dn|facts SECONDS [OUTDIR] [libFuzzer options]" >&2; exit 2; }
target=$1
secs=$2
shift 2
out=$here/out
if [ $# -ge 1 ] && [ "${1#-}" = "$1" ]; then
    out=$1
    shift
fi

case $target in
map) max_len=20000 ;;
dn | facts) max_len=70000 ;;
*) echo "run.sh: unknown target '$target' (map, dn, facts)" >&2; exit 2 ;;
esac

bin=$out/fuzz_$target
[ -x "$bin" ] || { echo "run.sh: $bin missing; run fuzz/build.sh $out" >&2; exit 2; }

work=$out/work/$target
art=$out/artifacts/$target
if [ -z "${FUZZ_RESUME:-}" ] || [ ! -d "$work" ]; then
    rm -rf "$work"
    mkdir -p "$work"
    cp "$here/corpus/$target"/* "$work"/ 2>/dev/null || true
fi
mkdir -p "$art"

dict=
[ -f "$here/$target.dict" ] && dict=-dict=$here/$target.dict

echo "run.sh: fuzz_$target for ${secs}s on $(ls "$work" | wc -l) seeds"
# ASan's leak check runs after every input that allocated (-detect_leaks=1);
# UBSan findings abort (built with -fno-sanitize-recover).
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
exec "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -max_len="$max_len" \
    -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$art/" $dict "$@" "$work"
