#!/usr/bin/env bash
# Alternate criterion runs of several builds of a bench, to compare them in the same
# minutes of a noisy machine, and print each bench's per-packet median of every run
# (criterion's point estimate, divided by the 32 packets of an iteration).
#
#   scripts/bench-ab.sh NAME=BENCH_BINARY [NAME=BENCH_BINARY ...]
#
# A bench binary is what `cargo bench -p l4lb-benches --bench pipeline --no-run`
# prints (copy it away before building the other version).
# Environment: RUNS=3 (runs per build), FILTER="established|new_flow" (criterion filter),
# WARMUP=2, MEASURE=5 (seconds), OUT= (directory for criterion's data; temporary).
set -euo pipefail
[ $# -ge 1 ] || { sed -n 2,12p "$0"; exit 2; }
RUNS=${RUNS:-3}
FILTER=${FILTER:-established|new_flow}
OUT=${OUT:-$(mktemp -d /tmp/l4lb-bench-ab.XXXXXX)}
names=()
for arg in "$@"; do
    name=${arg%%=*}; bin=${arg#*=}
    [ -x "$bin" ] || { echo "bench-ab: $bin is not an executable" >&2; exit 2; }
    names+=("$name")
done
for r in $(seq 1 "$RUNS"); do
    for arg in "$@"; do
        name=${arg%%=*}; bin=${arg#*=}
        echo "bench-ab: run $r of $name ($(date +%T))" >&2
        CRITERION_HOME="$OUT/$name-$r" "$bin" --bench --warm-up-time "${WARMUP:-2}" \
            --measurement-time "${MEASURE:-5}" "$FILTER" > "$OUT/$name-$r.log" 2>&1
    done
done
python3 - "$OUT" "${names[@]}" <<'PY'
import collections, glob, json, os, statistics, sys
out, names = sys.argv[1], sys.argv[2:]
res = collections.defaultdict(lambda: collections.defaultdict(list))
for f in glob.glob(os.path.join(out, '**', 'new', 'estimates.json'), recursive=True):
    rel = os.path.relpath(f, out).split(os.sep)
    name = rel[0].rsplit('-', 1)[0]
    bench = '/'.join(rel[1:-2])
    res[bench][name].append(json.load(open(f))['median']['point_estimate'] / 32)
for bench in sorted(res):
    cols = []
    for n in names:
        xs = res[bench].get(n)
        if xs:
            cols.append(f"{n}: " + ' '.join(f"{x:.1f}" for x in xs)
                        + f" (median {statistics.median(xs):.1f}, min {min(xs):.1f})")
    print(f"{bench}  " + '  '.join(cols))
PY
