# shellcheck shell=bash
# Shared shell helpers for Tablecast's scripts (scripts/test, scripts/metastore) and for the e2e
# harness, which starts its Hive metastore through `metastore_exec` so that the recipe lives in
# one place. Source it; it only defines functions and exports the cache locations.

TABLECAST_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TABLECAST_CACHE=${TABLECAST_CACHE:-$HOME/.cache/tablecast}
TABLECAST_VENV=${TABLECAST_VENV:-$TABLECAST_CACHE/venv}
PYSPARK_VERSION=${PYSPARK_VERSION:-4.0.1}
# One target directory shared by work trees and CI, so that a fresh clone does not rebuild the world.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$TABLECAST_CACHE/target}
export TABLECAST_ROOT TABLECAST_CACHE TABLECAST_VENV

log() { printf '\033[1m[%s]\033[0m %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs as root directly, otherwise through sudo when there is one.
_as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root to run: $*"
    fi
}

_APT_UPDATED=
# ensure_apt_packages ENTRY... — each ENTRY is `package` (installed unless dpkg knows it) or
# `command:package` (installed only when `command` is not on PATH, e.g. `java:openjdk-17-jre-headless`).
# Runs `apt-get update` once, and only when something is actually missing.
ensure_apt_packages() {
    local entry cmd pkg missing=()
    for entry in "$@"; do
        if [[ $entry == *:* ]]; then
            cmd=${entry%%:*} pkg=${entry#*:}
            command -v "$cmd" >/dev/null 2>&1 && continue
        else
            pkg=$entry
            dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' && continue
        fi
        missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    log "installing ${missing[*]}"
    if [ -z "$_APT_UPDATED" ]; then
        _as_root apt-get update -qq >&2 || die "apt-get update failed"
        _APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive _as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
        || die "apt-get install ${missing[*]} failed"
}

# ensure_postgres — PostgreSQL's server binaries for the store's contract tests
# (tests/tests/store_contract.rs): Debian's `postgresql` package, whose binaries live in
# /usr/lib/postgresql/<major>/bin, off PATH (so no `command:package` entry). The tests start
# their own throwaway servers on free ports (tests/src/postgres.rs); the cluster the package may
# start on install is not used. `$TABLECAST_PG_BIN` set to a folder with the binaries: nothing
# is installed.
ensure_postgres() {
    if [ -n "${TABLECAST_PG_BIN:-}" ]; then
        [ -x "$TABLECAST_PG_BIN/postgres" ] || die "TABLECAST_PG_BIN=$TABLECAST_PG_BIN has no postgres"
        return 0
    fi
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null && return 0
    ensure_apt_packages postgresql
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null \
        || die "the postgresql package installed no /usr/lib/postgresql/*/bin/postgres"
}

# ensure_promtool — sets and exports TABLECAST_PROMTOOL: `promtool` from PATH, else from Debian's
# `prometheus` package unpacked into the cache (downloaded, never installed: nothing starts a
# Prometheus server). tests/tests/deploy.rs checks deploy/ with it.
ensure_promtool() {
    local found dir tmp
    found=$(command -v promtool || true)
    dir="$TABLECAST_CACHE/prometheus"
    if [ -z "$found" ]; then
        found="$dir/usr/bin/promtool"
        if [ ! -x "$found" ]; then
            log "fetching promtool (Debian package prometheus, unpacked into $dir)"
            tmp=$(mktemp -d)
            if ! (cd "$tmp" && apt-get download prometheus >&2 2>/dev/null); then
                _as_root apt-get update -qq >&2 || die "apt-get update failed"
                (cd "$tmp" && apt-get download prometheus >&2) || die "apt-get download prometheus failed"
            fi
            dpkg-deb -x "$tmp"/prometheus_*.deb "$dir" || die "unpacking the prometheus package failed"
            rm -rf "$tmp"
        fi
    fi
    TABLECAST_PROMTOOL=$found
    export TABLECAST_PROMTOOL
}

# The folder of the Hive/Spark jars inside the venv's pyspark package.
pyspark_jars() {
    local jars
    for jars in "$TABLECAST_VENV"/lib/python3*/site-packages/pyspark/jars; do
        [ -d "$jars" ] && { printf '%s\n' "$jars"; return 0; }
    done
    return 1
}

# ensure_venv — the Python venv with pyspark (Hive metastore jars, spark-submit), duckdb and
# pyarrow at $TABLECAST_VENV. Idempotent; costs one `import` check when everything is there.
ensure_venv() {
    local py="$TABLECAST_VENV/bin/python"
    if [ -x "$py" ] && pyspark_jars >/dev/null \
        && "$py" -c 'import duckdb, pyarrow' >/dev/null 2>&1; then
        return 0
    fi
    command -v python3 >/dev/null || ensure_apt_packages python3:python3
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        ensure_apt_packages python3-venv
    fi
    if [ ! -x "$py" ]; then
        log "creating venv $TABLECAST_VENV"
        python3 -m venv "$TABLECAST_VENV" || die "python3 -m venv $TABLECAST_VENV failed"
    fi
    log "installing pyspark==$PYSPARK_VERSION duckdb pyarrow into $TABLECAST_VENV (pyspark is ~400 MB)"
    "$TABLECAST_VENV/bin/pip" install -q "pyspark==$PYSPARK_VERSION" duckdb pyarrow >&2 \
        || die "pip install into $TABLECAST_VENV failed"
    pyspark_jars >/dev/null || die "pyspark installed but no jars folder under $TABLECAST_VENV"
}

# ensure_java — a Java 17 runtime for the Hive metastore and Spark.
ensure_java() {
    ensure_apt_packages java:openjdk-17-jre-headless
}

# metastore_conf STATE_DIR — writes STATE_DIR/conf/hive-site.xml for an embedded-Derby metastore
# whose database and warehouse live in STATE_DIR, and prints the conf folder.
metastore_conf() {
    local state conf
    state=$(mkdir -p "$1" && cd "$1" && pwd) || die "cannot create metastore state dir $1"
    conf="$state/conf"
    mkdir -p "$conf" "$state/warehouse"
    cat >"$conf/hive-site.xml" <<EOF
<?xml version="1.0"?>
<configuration>
  <property><name>javax.jdo.option.ConnectionURL</name><value>jdbc:derby:;databaseName=$state/metastore_db;create=true</value></property>
  <property><name>javax.jdo.option.ConnectionDriverName</name><value>org.apache.derby.jdbc.EmbeddedDriver</value></property>
  <property><name>datanucleus.schema.autoCreateAll</name><value>true</value></property>
  <property><name>hive.metastore.schema.verification</name><value>false</value></property>
  <property><name>hive.metastore.warehouse.dir</name><value>file://$state/warehouse</value></property>
  <property><name>hive.metastore.event.db.notification.api.auth</name><value>false</value></property>
</configuration>
EOF
    printf '%s\n' "$conf"
}

# metastore_exec STATE_DIR PORT — replaces the shell with a Hive 2.3 Thrift metastore (pyspark's
# jars, Derby in STATE_DIR) listening on PORT, logging to stderr. It listens after 10-20 s; wait
# for the port. HIVE_LOG_LEVEL (default INFO) sets its verbosity.
metastore_exec() {
    local state=$1 port=$2 conf jars
    [ -n "$state" ] && [ -n "$port" ] || die "usage: metastore_exec STATE_DIR PORT"
    command -v java >/dev/null || die "java not found (scripts/test installs openjdk-17-jre-headless)"
    jars=$(pyspark_jars) || die "no pyspark jars under $TABLECAST_VENV (run scripts/test or ensure_venv)"
    conf=$(metastore_conf "$state")
    cd "$state" || die "cannot enter $state"
    # Without the ClassLoaderContextSelector, log4j2 wants the LMAX disruptor and the server dies.
    exec java -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dderby.stream.error.file="$state/derby.log" \
        -Dhive.root.logger=console -Dhive.log.level="${HIVE_LOG_LEVEL:-INFO}" \
        -Dlog4j2.contextSelector=org.apache.logging.log4j.core.selector.ClassLoaderContextSelector \
        -cp "$conf:$jars/*" org.apache.hadoop.hive.metastore.HiveMetaStore -p "$port"
}

# port_open HOST PORT — whether something accepts TCP connections there.
port_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# wait_for_port HOST PORT SECONDS [PID] — polls a TCP connect; fails early if PID dies.
wait_for_port() {
    local host=$1 port=$2 pid=${4:-} deadline=$((SECONDS + $3))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if port_open "$host" "$port"; then return 0; fi
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
        sleep 0.2
    done
    return 1
}

# free_port — a TCP port nobody listens on right now, on loopback.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
