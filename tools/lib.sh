# Shared by tools/test, tools/demo and tools/bench: install what the project needs, find
# free loopback ports, start servers and stop them by PID.

HS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# strace: a test checks the system calls that make the load's checkpoint durable.
APT_PACKAGES="librdkafka-dev libcurl4-openssl-dev libz-dev libjemalloc-dev kcat pkg-config curl strace"
# libz-dev is a virtual package (dpkg -s never finds it); its real name is checked instead.
hs_apt_name_installed() { [ "$1" = libz-dev ] && set -- zlib1g-dev; dpkg -s "$1" >/dev/null 2>&1; }

hs_log() { printf '%s %s\n' "[$(date -u +%H:%M:%S)]" "$*" >&2; }

hs_install_deps() {
    local missing=""
    for p in $APT_PACKAGES; do
        hs_apt_name_installed "$p" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        hs_log "installing apt packages:$missing"
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
    fi
    if ! command -v moto_server >/dev/null 2>&1; then
        hs_log "installing moto[server] from PyPI"
        python3 -m pip install -q 'moto[server]==5.2.1'
        hash -r
    fi
    # The reference Prometheus text-format parser, which ObservabilityTests read /metrics with.
    if ! python3 -c 'import prometheus_client' >/dev/null 2>&1; then
        hs_log "installing prometheus-client from PyPI"
        python3 -m pip install -q 'prometheus-client==0.21.1'
    fi
}

# Prints a TCP port on 127.0.0.1 that is free right now.
hs_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

hs_wait_port() { # port [seconds]
    local port=$1 deadline=$(( $(date +%s) + ${2:-30} ))
    until python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$port)))" 2>/dev/null; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

HS_PIDS=""
hs_stop_all() {
    for pid in $HS_PIDS; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    HS_PIDS=""
}

# Starts moto_server on a free port, one request at a time (tools/moto-server says why);
# sets MOTO_PORT and MOTO_ENDPOINT.
hs_start_moto() {
    MOTO_PORT=$(hs_free_port)
    "$HS_ROOT/tools/moto-server" -H 127.0.0.1 -p "$MOTO_PORT" >"${HS_LOG_DIR:-/tmp}/moto-$MOTO_PORT.log" 2>&1 &
    HS_PIDS="$HS_PIDS $!"
    hs_wait_port "$MOTO_PORT" 60 || { hs_log "moto_server did not start"; return 1; }
    MOTO_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
    hs_log "moto_server pid $! on $MOTO_ENDPOINT"
}

# Starts `hemstream kafka-mock` (binary $1, then its flags); sets KAFKA_BOOTSTRAP from its first line.
hs_start_kafka_mock() {
    local bin=$1; shift
    local out="${HS_LOG_DIR:-/tmp}/kafka-mock-$$.out"
    "$bin" kafka-mock "$@" >"$out" 2>"${out%.out}.log" &
    HS_PIDS="$HS_PIDS $!"
    local deadline=$(( $(date +%s) + 30 ))
    until [ -s "$out" ]; do
        [ "$(date +%s)" -lt "$deadline" ] || { hs_log "kafka-mock did not start"; return 1; }
        sleep 0.1
    done
    KAFKA_BOOTSTRAP=$(head -1 "$out")
    hs_log "kafka-mock pid $! on $KAFKA_BOOTSTRAP"
}
