# Starts throwaway PostgreSQL and etcd servers on loopback, on free ports, for tests and
# benchmarks. Source it, then call start_postgres / start_etcd; stop_services runs on exit.
# Sets CATALYST_TEST_POSTGRES_URL and CATALYST_TEST_ETCD.

SERVICES_DIR=$(mktemp -d /tmp/catalyst-services.XXXXXX)
chmod 755 "$SERVICES_DIR"
SERVICE_PIDS=()

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
