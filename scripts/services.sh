# Starts throwaway PostgreSQL and etcd servers on loopback, on free ports, for tests and
# benchmarks. Source it, then call start_postgres / start_etcd / start_etcd_cluster; stop_services
# runs on exit. Sets CATALYST_TEST_POSTGRES_URL, CATALYST_TEST_ETCD and CATALYST_TEST_ETCD_CLUSTER
# (host:port of each member, comma-separated; ETCD_CLUSTER_PIDS their processes).

SERVICES_DIR=$(mktemp -d /tmp/catalyst-services.XXXXXX)
chmod 755 "$SERVICES_DIR"
SERVICE_PIDS=()
ETCD_CLUSTER_PIDS=()

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_port() { # port seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

start_postgres() { # [extra postgres -c options...]
  local bin port dir
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -x "$bin/initdb" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; return 1; }
  dir="$SERVICES_DIR/postgres"
  mkdir -p "$dir"
  local as=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$dir"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  port=$(free_port)
  local opts="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400 $*"
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -o "$opts" -l "$dir/postgres.log" -w start >/dev/null \
    || { cat "$dir/postgres.log" >&2; return 1; }
  PG_CTL=("${as[@]}" "$bin/pg_ctl" -D "$dir/data")
  export CATALYST_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "PostgreSQL on 127.0.0.1:$port"
}

start_etcd() {
  command -v etcd >/dev/null || { echo "etcd is not installed (apt-get install etcd-server)" >&2; return 1; }
  local client peer dir
  dir="$SERVICES_DIR/etcd"
  mkdir -p "$dir"
  client=$(free_port)
  peer=$(free_port)
  etcd --name test --data-dir "$dir/data" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "test=http://127.0.0.1:$peer" >"$dir/etcd.log" 2>&1 &
  SERVICE_PIDS+=($!)
  wait_for_port "$client" 30 || { cat "$dir/etcd.log" >&2; return 1; }
  export CATALYST_TEST_ETCD="127.0.0.1:$client"
  echo "etcd on 127.0.0.1:$client"
}

start_etcd_cluster() { # [members, default 3]: each its own process, data dir and ports; durable
  command -v etcd >/dev/null || { echo "etcd is not installed (apt-get install etcd-server)" >&2; return 1; }
  local n=${1:-3} i dir initial="" endpoints=""
  local clients=() peers=()
  dir="$SERVICES_DIR/etcd-cluster"
  mkdir -p "$dir"
  for ((i = 0; i < n; i++)); do
    clients+=("$(free_port)")
    peers+=("$(free_port)")
    initial+="${initial:+,}m$i=http://127.0.0.1:${peers[i]}"
    endpoints+="${endpoints:+,}127.0.0.1:${clients[i]}"
  done
  for ((i = 0; i < n; i++)); do
    etcd --name "m$i" --data-dir "$dir/m$i" \
      --listen-client-urls "http://127.0.0.1:${clients[i]}" --advertise-client-urls "http://127.0.0.1:${clients[i]}" \
      --listen-peer-urls "http://127.0.0.1:${peers[i]}" --initial-advertise-peer-urls "http://127.0.0.1:${peers[i]}" \
      --initial-cluster "$initial" --initial-cluster-state new \
      --initial-cluster-token "catalyst-$$-${clients[0]}" >"$dir/m$i.log" 2>&1 &
    SERVICE_PIDS+=($!)
    ETCD_CLUSTER_PIDS+=($!)
  done
  for ((i = 0; i < n; i++)); do
    wait_for_port "${clients[i]}" 30 || { cat "$dir/m$i.log" >&2; return 1; }
  done
  # healthy: every member answers /health with "health":"true" (a quorum elected a leader)
  for ((i = 0; i < n; i++)); do
    python3 - "http://127.0.0.1:${clients[i]}/health" <<'PY' || { cat "$dir/m$i.log" >&2; return 1; }
import sys, time, urllib.request
for _ in range(300):
    try:
        if '"true"' in urllib.request.urlopen(sys.argv[1], timeout=2).read().decode():
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.1)
sys.exit(1)
PY
  done
  ETCD_CLUSTER_DIR="$dir"
  export CATALYST_TEST_ETCD_CLUSTER="$endpoints"
  echo "etcd cluster of $n members on $endpoints"
}

stop_services() {
  local pid
  if [ -n "${PG_CTL:-}" ]; then
    "${PG_CTL[@]}" -m fast stop >/dev/null 2>&1 || true
  fi
  for pid in "${SERVICE_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$SERVICES_DIR"
}
trap 'rc=$?; stop_services; exit $rc' EXIT
