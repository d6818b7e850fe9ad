#!/usr/bin/env bash
# A/B of two `tablecast` binaries on one spec: `tablecast run --timing` (the command's own time
# inside its process, as REPORT.md row 5 measures it), alternating A and B for RUNS rounds on the
# same fixtures, so that both see the same machine. Prints mean and median of each (the first
# run of each dropped) and A's time over B's: above 1, B is faster. Also checks that both wrote
# the same answer.
#
#   bench/ab_run.sh OLD_BINARY NEW_BINARY SPEC [RUNS=15] [SCALE=10]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$TABLECAST_ROOT"
OLD=$1 NEW=$2 SPEC=$3 RUNS=${4:-15} SCALE=${5:-10}
BIN=$NEW
. bench/lib.sh
W=$(fixtures_dir "$SCALE")
DIR=$STATE
for _ in $(seq "$RUNS"); do
    for side in a b; do
        bin=$OLD; [ $side = b ] && bin=$NEW
        "$bin" run --path fasttrack --spec "fixtures/specs/$SPEC.toml" --metastore "file://$W" \
            --out "$DIR/$side.jsonl" --timing "$DIR/$side.txt" 2>/dev/null
    done
done
cmp -s "$DIR/a.jsonl" "$DIR/b.jsonl" || die "A and B answer $SPEC differently"
python3 - "$DIR/a.txt" "$DIR/b.txt" "$SPEC" <<'PY'
import statistics as st, sys
a, b = ([float(x) for x in open(p)][1:] for p in sys.argv[1:3])
ms = lambda xs: f"mean {st.mean(xs) * 1e3:.1f} ms, median {st.median(xs) * 1e3:.1f}"
print(f"{sys.argv[3]}: A {ms(a)} | B {ms(b)} | A/B mean {st.mean(a) / st.mean(b):.3f}, median {st.median(a) / st.median(b):.3f}")
PY
