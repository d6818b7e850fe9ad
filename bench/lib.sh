# Helpers shared by scripts/bench and the A/B scripts in bench/: throw-away Redis servers and
# lookup services on free loopback ports, stopped on exit, and cached fixture warehouses.
# Sourced after scripts/lib.sh, from the repository root. Callers set BIN (a `tablecast` binary).

WORK=${WORK:-$TABLECAST_CACHE/bench}
# The generator's source, so that cached fixtures never outlive a change to it.
FIXTURES_REV=$(cat fixtures/src/*.rs | sha1sum | cut -c1-10)
STATE=$(mktemp -d)
export TABLECAST_STATE_DIR=$STATE/state

# Stops every process started here (each left a pid file in $STATE), then removes $STATE.
stop_bench_processes() {
    local pidfile pid
    for pidfile in "$STATE"/*.pid; do
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    # Let them exit (Redis writes its last log lines on the way out) before removing their folder.
    for pidfile in "$STATE"/*.pid; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    done
    rm -rf "$STATE"
}
trap stop_bench_processes EXIT
trap "exit 130" INT TERM

wait_port() {
    wait_for_port 127.0.0.1 "$1" 10 || die "nothing listens on 127.0.0.1:$1"
}

# start_redis → prints the port of a fresh redis-server (no persistence), stopped on exit.
start_redis() {
    local port; port=$(free_port)
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --logfile "$STATE/redis-$port.log" \
        --dir "$STATE" >/dev/null &
    echo $! > "$STATE/redis-$port.pid"
    wait_port "$port"
    printf '%s\n' "$port"
}

# start_lookup REDIS_PORT [NEAR_CACHE_MB] [BINARY] → prints the port of a lookup service over that
# Redis (its near cache at the default size, or NEAR_CACHE_MB; 0: off). BINARY (default $BIN) is
# edge-cache's `tablecast-lookup`, or else a `tablecast`, run as `tablecast edge serve`; its pid
# is in $STATE/lookup-PORT.pid.
start_lookup() {
    local port bin=${3:-$BIN} serve=(edge serve)
    port=$(free_port)
    [ "$(basename "$bin")" = tablecast-lookup ] && serve=()
    TABLECAST_STATE_DIR=$STATE/lookup-$port TABLECAST_LOOKUP__NEAR_CACHE_MB=${2:-64} RUST_LOG=warn \
        "$bin" "${serve[@]}" --redis "redis://127.0.0.1:$1" --listen "127.0.0.1:$port" \
        > "$STATE/lookup-$port.log" 2>&1 &
    echo $! > "$STATE/lookup-$port.pid"
    wait_port "$port"
    printf '%s\n' "$port"
}

# fill_synthetic REDIS_PORT → serves API synth_100k (100 k synthetic keys) from that Redis.
fill_synthetic() {
    local fill=$CARGO_TARGET_DIR/release/examples/fill
    [ -x "$fill" ] || cargo build --release -p edge-cache --example fill >&2
    "$fill" "redis://127.0.0.1:$1" synth_100k 100000 >/dev/null
}

# fixtures_dir SCALE → prints the warehouse dir, generated once per (generator, seed, scale).
fixtures_dir() {
    local dir=$WORK/fixtures/$FIXTURES_REV-seed-default-scale-$1
    if [ ! -f "$dir/.complete" ]; then
        log "generating fixtures at scale $1"
        "$BIN" fixtures generate --out "$dir" --scale "$1" >&2
        touch "$dir/.complete"
    fi
    printf '%s\n' "$dir"
}
