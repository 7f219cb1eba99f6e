# Shared by the benchmark scripts (sourced, not run): the release build, a work directory that
# is removed on exit with every process started here, registries on 127.0.0.1 with access logs,
# and small timing helpers.

for tool in /usr/bin/docker-registry /usr/bin/time skopeo curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing $tool: apt-get install -y docker-registry time skopeo curl python3" >&2; exit 1; }
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dregsy/target}"
nice cargo build --release --locked --quiet
DREGSY="$CARGO_TARGET_DIR/release/dregsy"

work=$(mktemp -d)
mkdir -p "$work/pids"
# Registries and proxies are started in command substitutions (subshells): each leaves its
# process id in a file, so that the cleanup finds them all.
cleanup() {
  for file in "$work"/pids/*; do [ -e "$file" ] && kill "$(cat "$file")" 2>/dev/null || true; done
  sleep 0.2
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

await_port() { # port what -> prints the port once something listens there
  for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && { echo "$1"; return 0; }
    sleep 0.05
  done
  echo "$2 did not start" >&2; exit 1
}

start_registry() { # name -> prints port; access log in $work/<name>/log
  local name=$1 port; port=$(free_port)
  mkdir -p "$work/$name/storage"
  cat > "$work/$name/config.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: false}}
storage: {filesystem: {rootdirectory: $work/$name/storage}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port, secret: bench-secret}
YAML
  /usr/bin/docker-registry serve "$work/$name/config.yml" >"$work/$name/log" 2>&1 &
  echo $! > "$work/pids/registry-$name"
  await_port "$port" "registry $name"
}

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }
median() { python3 -c "import statistics,sys; print(f'{statistics.median(float(x) for x in sys.argv[1:]):.3f}')" "$@"; }
log_lines() { wc -l < "$work/$1/log"; }
requests_since() { # name start_line [method] -> API requests (of that method) logged after that line
  tail -n +"$(($2 + 1))" "$work/$1/log" | grep -cE "\"(${3:-GET|HEAD|PUT|POST|PATCH|DELETE}) /v2/" || true
}
load_average() { cut -d' ' -f1-3 /proc/loadavg; }
