#!/usr/bin/env bash
# Benchmark: dregsy's native relay against the original's way of copying (one `skopeo copy` per
# tag, one after another) and against `skopeo sync`, on registries on this machine.
#
#   bench/sync.sh            # IMAGES=20 LAYERS=3 LAYER_MIB=4 BIG_MIB=512 by default
#
# Prints wall times of a cold sync and of the no-op second run for each tool, the ratios, the
# requests the registries saw during each no-op run (from their access logs), and dregsy's peak
# RSS while copying one image with a single BIG_MIB layer. Run on demand; not part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGES=${IMAGES:-20}
LAYERS=${LAYERS:-3}
LAYER_MIB=${LAYER_MIB:-4}
BIG_MIB=${BIG_MIB:-512}

for tool in /usr/bin/docker-registry skopeo curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing $tool: apt-get install -y docker-registry skopeo curl python3" >&2; exit 1; }
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dregsy/target}"
cargo build --release --locked --quiet
DREGSY="$CARGO_TARGET_DIR/release/dregsy"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

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
  pids+=($!)
  for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { echo "$port"; return 0; }
    sleep 0.05
  done
  echo "registry $name did not start" >&2; exit 1
}

push_blob() { # port repo file -> prints digest
  local port=$1 repo=$2 file=$3 digest location
  digest="sha256:$(sha256sum "$file" | cut -d' ' -f1)"
  location=$(curl -fsS -X POST -D - -o /dev/null "http://127.0.0.1:$port/v2/$repo/blobs/uploads/" | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
  case "$location" in http*) ;; *) location="http://127.0.0.1:$port$location" ;; esac
  case "$location" in *\?*) location="$location&digest=$digest" ;; *) location="$location?digest=$digest" ;; esac
  curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$file" "$location" -o /dev/null
  echo "$digest"
}

push_image() { # port repo tag layers layer_mib
  local port=$1 repo=$2 tag=$3 layers=$4 mib=$5 i digest size entries=""
  for i in $(seq "$layers"); do
    head -c "$((mib * 1024 * 1024))" /dev/urandom > "$work/layer"
    digest=$(push_blob "$port" "$repo" "$work/layer")
    size=$(stat -c %s "$work/layer")
    entries="$entries${entries:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"$digest\",\"size\":$size}"
  done
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"created":"%s"}' "$repo" > "$work/config"
  digest=$(push_blob "$port" "$repo" "$work/config")
  size=$(stat -c %s "$work/config")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
    "$digest" "$size" "$entries" > "$work/manifest"
  curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$work/manifest" \
    "http://127.0.0.1:$port/v2/$repo/manifests/$tag" -o /dev/null
}

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }
ratio() { python3 -c "print(f'{$1 / $2:.1f}x')"; }
log_lines() { wc -l < "$work/$1/log"; }
requests_since() { # name start_line -> number of API requests logged after that line
  tail -n +"$(($2 + 1))" "$work/$1/log" | grep -cE '"(GET|HEAD|PUT|POST|PATCH|DELETE) /v2/' || true
}

echo "setting up: $IMAGES images x $LAYERS layers x $LAYER_MIB MiB in the source registry"
SRC=$(start_registry source)
for n in $(seq -w 1 "$IMAGES"); do push_image "$SRC" "bench/app-$n" v1 "$LAYERS" "$LAYER_MIB"; done
T_DREGSY=$(start_registry dregsy)
T_COPY=$(start_registry copy)
T_SYNC=$(start_registry sync)

# dregsy: one task, one mapping per image.
{
  echo "tasks:"
  echo "- name: bench"
  echo "  source: {registry: 127.0.0.1:$SRC, skip-tls-verify: true}"
  echo "  target: {registry: 127.0.0.1:$T_DREGSY, skip-tls-verify: true}"
  echo "  mappings:"
  for n in $(seq -w 1 "$IMAGES"); do echo "  - {from: bench/app-$n, tags: [v1]}"; done
} > "$work/dregsy.yaml"
# skopeo sync: the same images from a YAML source list.
{
  echo "127.0.0.1:$SRC:"
  echo "  tls-verify: false"
  echo "  images:"
  for n in $(seq -w 1 "$IMAGES"); do echo "    bench/app-$n: [v1]"; done
} > "$work/skopeo-sync.yaml"

run_dregsy() { LOG_FORMAT=json "$DREGSY" -config="$work/dregsy.yaml" > "$work/dregsy.out"; }
run_copy() {
  for n in $(seq -w 1 "$IMAGES"); do
    skopeo --insecure-policy copy --quiet --src-tls-verify=false --dest-tls-verify=false \
      "docker://127.0.0.1:$SRC/bench/app-$n:v1" "docker://127.0.0.1:$T_COPY/bench/app-$n:v1"
  done
}
run_sync() {
  skopeo --insecure-policy sync --src yaml --dest docker --dest-tls-verify=false \
    "$work/skopeo-sync.yaml" "127.0.0.1:$T_SYNC" >/dev/null
}

measure() { # label function target-registry-name -> sets COLD, NOOP, NOOP_SRC_REQ, NOOP_DST_REQ
  local s e s_src s_dst
  s=$(now); "$2"; e=$(now); COLD=$(elapsed "$s" "$e")
  s_src=$(log_lines source); s_dst=$(log_lines "$3")
  s=$(now); "$2"; e=$(now); NOOP=$(elapsed "$s" "$e")
  sleep 0.2
  NOOP_SRC_REQ=$(requests_since source "$s_src"); NOOP_DST_REQ=$(requests_since "$3" "$s_dst")
}

measure dregsy run_dregsy dregsy; D_COLD=$COLD D_NOOP=$NOOP D_SRC=$NOOP_SRC_REQ D_DST=$NOOP_DST_REQ
measure copy run_copy copy;       C_COLD=$COLD C_NOOP=$NOOP C_SRC=$NOOP_SRC_REQ C_DST=$NOOP_DST_REQ
measure sync run_sync sync;       S_COLD=$COLD S_NOOP=$NOOP S_SRC=$NOOP_SRC_REQ S_DST=$NOOP_DST_REQ

# Peak memory while copying one image with one big layer.
BIG_SRC=$(start_registry big-source)
BIG_DST=$(start_registry big-target)
push_image "$BIG_SRC" bench/big v1 1 "$BIG_MIB"
cat > "$work/big.yaml" <<YAML
tasks:
- name: big
  source: {registry: 127.0.0.1:$BIG_SRC, skip-tls-verify: true}
  target: {registry: 127.0.0.1:$BIG_DST, skip-tls-verify: true}
  mappings:
  - {from: bench/big, tags: [v1]}
YAML
s=$(now)
RSS_KIB=$(LOG_FORMAT=json /usr/bin/time -f '%M' "$DREGSY" -config="$work/big.yaml" 2>&1 >/dev/null | tail -n 1)
e=$(now)
BIG_TIME=$(elapsed "$s" "$e")

total_mib=$((IMAGES * LAYERS * LAYER_MIB))
echo
echo "## $IMAGES images x $LAYERS layers x $LAYER_MIB MiB ($total_mib MiB), registries on 127.0.0.1, $(nproc) cores"
echo
echo "| tool | cold sync | no-op run | no-op requests (source + target) |"
echo "|---|---|---|---|"
echo "| dregsy (native) | ${D_COLD} s | ${D_NOOP} s | $D_SRC + $D_DST |"
echo "| skopeo copy per tag, sequential (the original's way) | ${C_COLD} s | ${C_NOOP} s | $C_SRC + $C_DST |"
echo "| skopeo sync | ${S_COLD} s | ${S_NOOP} s | $S_SRC + $S_DST |"
echo
echo "| ratio | cold | no-op |"
echo "|---|---|---|"
echo "| dregsy vs skopeo copy per tag | $(ratio "$C_COLD" "$D_COLD") faster | $(ratio "$C_NOOP" "$D_NOOP") faster |"
echo "| dregsy vs skopeo sync | $(ratio "$S_COLD" "$D_COLD") faster | $(ratio "$S_NOOP" "$D_NOOP") faster |"
echo
echo "dregsy no-op requests per tag: $(python3 -c "print(f'{($D_SRC + $D_DST) / $IMAGES:.2f}')") (source + target, tokens and pings included)"
echo "dregsy copying one ${BIG_MIB} MiB layer: ${BIG_TIME} s, peak RSS $((RSS_KIB / 1024)) MiB"
