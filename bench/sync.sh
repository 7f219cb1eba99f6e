#!/usr/bin/env bash
# Benchmark: dregsy's native relay against the floor (a minimal client copying the same blobs and
# manifests), against the original's way of copying (one `skopeo copy` per tag, one after
# another) and against `skopeo sync`, on registries on this machine.
#
#   bench/sync.sh   # IMAGES=20 LAYERS=3 LAYER_MIB=4 BIG_MIB=512 NOOP_RUNS=5 COLD_PAIRS=3
#                   # LATENCY_MS=25 SKOPEO=1 by default
#
# Prints, for COLD_PAIRS pairs of fresh target registries, dregsy's cold sync and the floor's
# (bench/floor.py copy: each blob streamed GET -> POST/PUT, then the manifest PUT, with dregsy's
# default concurrency) and their ratio. Then wall times of a cold sync and of the no-op run (the
# median of NOOP_RUNS) for dregsy and the skopeo peers (SKOPEO=0 leaves them out), the ratios,
# the requests the registries saw during a no-op run (from their access logs), and dregsy's
# peak RSS while copying one image with a single BIG_MIB layer. Then the same rounds again with
# every registry behind a proxy that adds LATENCY_MS each way, as far-away registries do
# (LATENCY_MS=0 skips it). Then the air-gap round: registry -> OCI image layouts -> registry
# for TAGS_PER_IMAGE=3 tags of each image against skopeo (LAYOUT_ROUND=0 skips it). Run on
# demand; not part of the tests. Only 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGES=${IMAGES:-20}
LAYERS=${LAYERS:-3}
LAYER_MIB=${LAYER_MIB:-4}
BIG_MIB=${BIG_MIB:-512}
NOOP_RUNS=${NOOP_RUNS:-5}
LATENCY_MS=${LATENCY_MS:-25}
COLD_PAIRS=${COLD_PAIRS:-3}
SKOPEO=${SKOPEO:-1}
# dregsy's defaults (docs/configuration.md): the floor copies with the same concurrency.
PARALLEL_IMAGES=8
PARALLEL_BLOBS=6

source bench/lib.sh

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


echo "setting up: $IMAGES images x $LAYERS layers x $LAYER_MIB MiB in the source registry"
SRC=$(start_registry source)
for n in $(seq -w 1 "$IMAGES"); do push_image "$SRC" "bench/app-$n" v1 "$LAYERS" "$LAYER_MIB"; done

# One round: each tool syncs the source into a fresh target registry of its own, cold, then
# NOOP_RUNS times with nothing to do (the median counts). The ports given may be proxies.
dregsy_config() { # src_port target_port -> prints a dregsy config syncing every image
  echo "tasks:"
  echo "- name: bench"
  echo "  source: {registry: 127.0.0.1:$1, skip-tls-verify: true}"
  echo "  target: {registry: 127.0.0.1:$2, skip-tls-verify: true}"
  echo "  mappings:"
  for n in $(seq -w 1 "$IMAGES"); do echo "  - {from: bench/app-$n, tags: [v1]}"; done
}
write_configs() { # src_port dregsy_target_port sync_target_port
  dregsy_config "$1" "$2" > "$work/dregsy.yaml"
  {
    echo "127.0.0.1:$1:"
    echo "  tls-verify: false"
    echo "  images:"
    for n in $(seq -w 1 "$IMAGES"); do echo "    bench/app-$n: [v1]"; done
  } > "$work/skopeo-sync.yaml"
  SYNC_DEST=127.0.0.1:$3
}

run_dregsy() { LOG_FORMAT=json "$DREGSY" -config="$work/dregsy.yaml" > "$work/dregsy.out"; }
run_copy() {
  for n in $(seq -w 1 "$IMAGES"); do
    skopeo --insecure-policy copy --quiet --src-tls-verify=false --dest-tls-verify=false \
      "docker://127.0.0.1:$SRC_PORT/bench/app-$n:v1" "docker://127.0.0.1:$COPY_PORT/bench/app-$n:v1"
  done
}
run_sync() {
  skopeo --insecure-policy sync --src yaml --dest docker --dest-tls-verify=false \
    "$work/skopeo-sync.yaml" "$SYNC_DEST" >/dev/null 2>>"$work/skopeo-sync.log"
}


measure() { # function target-registry-name -> sets COLD, NOOP (median), NOOP_SRC_REQ, NOOP_DST_REQ
  local s e s_src s_dst times=() i
  s=$(now); "$1"; e=$(now); COLD=$(elapsed "$s" "$e")
  for i in $(seq "$NOOP_RUNS"); do
    s_src=$(log_lines source); s_dst=$(log_lines "$2")
    s=$(now); "$1"; e=$(now); times+=("$(python3 -c "print($e - $s)")")
    if [ "$i" = 1 ]; then
      sleep 0.2
      NOOP_SRC_REQ=$(requests_since source "$s_src"); NOOP_DST_REQ=$(requests_since "$2" "$s_dst")
    fi
  done
  NOOP=$(median "${times[@]}")
}

round() { # label src_port dregsy_port copy_port sync_port; target registry names get the label
  SRC_PORT=$2 COPY_PORT=$4
  write_configs "$2" "$3" "$5"
  measure run_dregsy "$1-dregsy"; D_COLD=$COLD D_NOOP=$NOOP D_SRC=$NOOP_SRC_REQ D_DST=$NOOP_DST_REQ
  [ "$SKOPEO" = 1 ] || return 0
  measure run_copy "$1-copy";     C_COLD=$COLD C_NOOP=$NOOP C_SRC=$NOOP_SRC_REQ C_DST=$NOOP_DST_REQ
  measure run_sync "$1-sync";     S_COLD=$COLD S_NOOP=$NOOP S_SRC=$NOOP_SRC_REQ S_DST=$NOOP_DST_REQ
}

direct() { echo "$1"; }
cold_pairs() { # label src_port wrap -> a table of dregsy's cold sync against the floor's
  # Each pair copies into two fresh registries (their ports passed through `wrap`: `direct`
  # or `proxied`), dregsy first in odd pairs, the floor first in even ones.
  local label=$1 src=$2 wrap=$3 i d_port f_port s e d f ratios=() d_times=() f_times=()
  local repos; repos=$(for n in $(seq -w 1 "$IMAGES"); do echo "bench/app-$n"; done)
  echo "| pair | dregsy cold | floor cold | dregsy / floor |"
  echo "|---|---|---|---|"
  for i in $(seq "$COLD_PAIRS"); do
    d_port=$("$wrap" "$(start_registry "$label-cold-dregsy-$i")")
    f_port=$("$wrap" "$(start_registry "$label-cold-floor-$i")")
    dregsy_config "$src" "$d_port" > "$work/cold-$label-$i.yaml"
    run_d() {
      s=$(now); LOG_FORMAT=json "$DREGSY" -config="$work/cold-$label-$i.yaml" > "$work/cold-$label-$i.out"; e=$(now)
      grep -q "task done: $IMAGES copied" "$work/cold-$label-$i.out" || { echo "dregsy did not copy every image" >&2; exit 1; }
      d=$(python3 -c "print(f'{$e - $s:.3f}')")
    }
    run_f() {
      # shellcheck disable=SC2086 # one repository per word
      s=$(now); python3 bench/floor.py copy "$PARALLEL_IMAGES" "$PARALLEL_BLOBS" "$src" "$f_port" v1 $repos >/dev/null; e=$(now)
      f=$(python3 -c "print(f'{$e - $s:.3f}')")
    }
    if [ $((i % 2)) = 1 ]; then run_d; run_f; else run_f; run_d; fi
    d_times+=("$d"); f_times+=("$f"); ratios+=("$(python3 -c "print(f'{$d / $f:.2f}')")")
    echo "| $i | $d s | $f s | ${ratios[-1]}x |"
  done
  echo "| median | $(median "${d_times[@]}") s | $(median "${f_times[@]}") s | $(median "${ratios[@]}")x |"
}

report() { # title
  echo
  echo "## $1"
  echo
  echo "| tool | cold sync | no-op run (median of $NOOP_RUNS) | no-op requests (source + target) |"
  echo "|---|---|---|---|"
  echo "| dregsy (native) | ${D_COLD} s | ${D_NOOP} s | $D_SRC + $D_DST |"
  if [ "$SKOPEO" = 1 ]; then
  echo "| skopeo copy per tag, sequential (the original's way) | ${C_COLD} s | ${C_NOOP} s | $C_SRC + $C_DST |"
  echo "| skopeo sync | ${S_COLD} s | ${S_NOOP} s | $S_SRC + $S_DST |"
  echo
  echo "| ratio | cold | no-op |"
  echo "|---|---|---|"
  echo "| dregsy vs skopeo copy per tag | $(ratio "$C_COLD" "$D_COLD") faster | $(ratio "$C_NOOP" "$D_NOOP") faster |"
  echo "| dregsy vs skopeo sync | $(ratio "$S_COLD" "$D_COLD") faster | $(ratio "$S_NOOP" "$D_NOOP") faster |"
  fi
  echo
  echo "dregsy no-op requests per tag: $(python3 -c "print(f'{($D_SRC + $D_DST) / $IMAGES:.2f}')") (source + target, tokens and pings included)"
}

total_mib=$((IMAGES * LAYERS * LAYER_MIB))
{
  echo "load average before: $(load_average)"
  echo
  echo "## Cold sync against the floor: $IMAGES images x $LAYERS layers x $LAYER_MIB MiB ($total_mib MiB), registries on 127.0.0.1"
  echo
  cold_pairs local "$SRC" direct
  echo
  echo "load average after: $(load_average)"
} > "$work/report.md"
round local "$SRC" "$(start_registry local-dregsy)" "$(start_registry local-copy)" "$(start_registry local-sync)"
report "$IMAGES images x $LAYERS layers x $LAYER_MIB MiB ($total_mib MiB), registries on 127.0.0.1, $(nproc) cores" >> "$work/report.md"

if [ "$LATENCY_MS" != 0 ]; then
  proxied() { # upstream port -> prints the port of a latency proxy in front of it
    local port; port=$(free_port)
    python3 bench/latency_proxy.py "$port" "$1" "$LATENCY_MS" >"$work/proxy-$port.log" 2>&1 &
    echo $! > "$work/pids/proxy-$port"
    await_port "$port" "latency proxy"
  }
  FAR_SRC=$(proxied "$SRC")
  {
    echo
    echo "## Cold sync against the floor, every registry behind a proxy adding ${LATENCY_MS} ms each way"
    echo
    cold_pairs far "$FAR_SRC" proxied
  } >> "$work/report.md"
  round far "$FAR_SRC" "$(proxied "$(start_registry far-dregsy)")" \
    "$(proxied "$(start_registry far-copy)")" "$(proxied "$(start_registry far-sync)")"
  report "The same, every registry behind a proxy adding ${LATENCY_MS} ms each way ($((2 * LATENCY_MS)) ms round trip)" >> "$work/report.md"
fi

# The air-gap round (README.md, "Air-gapped mirrors"): registry -> OCI image layouts and back,
# for TAGS_PER_IMAGE tags of every image (the same manifest under each tag), against skopeo
# copying each tag into and out of oci: and `skopeo sync --dest dir` / `--src dir`.
TAGS_PER_IMAGE=${TAGS_PER_IMAGE:-3}
if [ "${LAYOUT_ROUND:-1}" != 0 ]; then
  tags=$(seq -s, -f 'v%g' 1 "$TAGS_PER_IMAGE")
  for n in $(seq -w 1 "$IMAGES"); do
    curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
      "http://127.0.0.1:$SRC/v2/bench/app-$n/manifests/v1" -o "$work/manifest"
    for t in $(seq 2 "$TAGS_PER_IMAGE"); do
      curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$work/manifest" "http://127.0.0.1:$SRC/v2/bench/app-$n/manifests/v$t" -o /dev/null
    done
  done
  layout_config() { # source-location target-location file
    {
      echo "tasks:"
      echo "- name: bench"
      echo "  source: $1"
      echo "  target: $2"
      echo "  mappings:"
      for n in $(seq -w 1 "$IMAGES"); do echo "  - {from: bench/app-$n, tags: [$tags]}"; done
    } > "$3"
  }
  INSIDE=$(start_registry inside)
  layout_config "{registry: 127.0.0.1:$SRC, skip-tls-verify: true}" "{registry: 'oci:$work/oci-dregsy'}" "$work/out.yaml"
  layout_config "{registry: 'oci:$work/oci-dregsy'}" "{registry: 127.0.0.1:$INSIDE, skip-tls-verify: true}" "$work/in.yaml"
  {
    echo "127.0.0.1:$SRC:"
    echo "  tls-verify: false"
    echo "  images:"
    for n in $(seq -w 1 "$IMAGES"); do echo "    bench/app-$n: [${tags//,/, }]"; done
  } > "$work/skopeo-sync.yaml"
  run_out() { LOG_FORMAT=json "$DREGSY" -config="$work/out.yaml" > "$work/dregsy.out"; }
  run_in() { LOG_FORMAT=json "$DREGSY" -config="$work/in.yaml" > "$work/dregsy.out"; }
  copy_each() { # from-prefix to-prefix extra-flags: one skopeo copy per tag, in sequence
    local n t
    for n in $(seq -w 1 "$IMAGES"); do
      mkdir -p "$work/oci-copy/bench/app-$n"
      for t in ${tags//,/ }; do
        # shellcheck disable=SC2086
        skopeo --insecure-policy copy --quiet $3 "$(printf "$1" "$n" "$t")" "$(printf "$2" "$n" "$t")"
      done
    done
  }
  run_copy_out() { copy_each "docker://127.0.0.1:$SRC/bench/app-%s:%s" "oci:$work/oci-copy/bench/app-%s:%s" --src-tls-verify=false; }
  run_copy_in() { copy_each "oci:$work/oci-copy/bench/app-%s:%s" "docker://127.0.0.1:$INSIDE_COPY/bench/app-%s:%s" --dest-tls-verify=false; }
  run_sync_out() {
    skopeo --insecure-policy sync --src yaml --dest dir "$work/skopeo-sync.yaml" "$work/dir-sync" >/dev/null 2>>"$work/skopeo-sync.log"
  }
  run_sync_in() {
    skopeo --insecure-policy sync --src dir --dest docker --dest-tls-verify=false \
      "$work/dir-sync" "127.0.0.1:$INSIDE_SYNC/bench" >/dev/null 2>>"$work/skopeo-sync.log"
  }
  INSIDE_COPY=$(start_registry inside-copy)
  INSIDE_SYNC=$(start_registry inside-sync)
  measure run_out source;      O_D_COLD=$COLD O_D_NOOP=$NOOP
  measure run_copy_out source; O_C_COLD=$COLD O_C_NOOP=$NOOP
  # skopeo sync refuses to write into a directory it wrote before: it has a cold run only.
  s=$(now); run_sync_out; e=$(now); O_S_COLD=$(elapsed "$s" "$e")
  measure run_in inside;            I_D_COLD=$COLD I_D_NOOP=$NOOP
  measure run_copy_in inside-copy;  I_C_COLD=$COLD I_C_NOOP=$NOOP
  measure run_sync_in inside-sync;  I_S_COLD=$COLD I_S_NOOP=$NOOP
  {
    echo
    echo "## Air gap: $IMAGES images x $TAGS_PER_IMAGE tags ($((IMAGES * TAGS_PER_IMAGE)) tags, $total_mib MiB) through a directory"
    echo
    echo "| step | tool | cold | no-op (median of $NOOP_RUNS) |"
    echo "|---|---|---|---|"
    echo "| registry -> directory | dregsy, oci: target | ${O_D_COLD} s | ${O_D_NOOP} s |"
    echo "| registry -> directory | skopeo copy per tag into oci: | ${O_C_COLD} s | ${O_C_NOOP} s |"
    echo "| registry -> directory | skopeo sync --dest dir | ${O_S_COLD} s | n/a: refuses an existing directory |"
    echo "| directory -> registry | dregsy, oci: source | ${I_D_COLD} s | ${I_D_NOOP} s |"
    echo "| directory -> registry | skopeo copy per tag from oci: | ${I_C_COLD} s | ${I_C_NOOP} s |"
    echo "| directory -> registry | skopeo sync --src dir | ${I_S_COLD} s | ${I_S_NOOP} s |"
    echo
    echo "| ratio (dregsy faster by) | out, cold | out, no-op | in, cold | in, no-op |"
    echo "|---|---|---|---|---|"
    echo "| vs skopeo copy per tag | $(ratio "$O_C_COLD" "$O_D_COLD") | $(ratio "$O_C_NOOP" "$O_D_NOOP") | $(ratio "$I_C_COLD" "$I_D_COLD") | $(ratio "$I_C_NOOP" "$I_D_NOOP") |"
    echo "| vs skopeo sync (dir) | $(ratio "$O_S_COLD" "$O_D_COLD") | n/a | $(ratio "$I_S_COLD" "$I_D_COLD") | $(ratio "$I_S_NOOP" "$I_D_NOOP") |"
    echo
    echo "directory sizes: dregsy $(du -sm "$work/oci-dregsy" | cut -f1) MiB, skopeo copy $(du -sm "$work/oci-copy" | cut -f1) MiB, skopeo sync $(du -sm "$work/dir-sync" | cut -f1) MiB"
  } >> "$work/report.md"
fi

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

cat "$work/report.md"
echo
echo "load average at the end: $(load_average)"
echo "dregsy copying one ${BIG_MIB} MiB layer: ${BIG_TIME} s, peak RSS $((RSS_KIB / 1024)) MiB"
