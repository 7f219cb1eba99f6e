#!/usr/bin/env bash
# Benchmark at scale: many repositories and tags behind one `from: regex:` mapping, against the
# floor, a minimal client sending the same manifest HEAD requests with the same concurrency.
#
#   bench/scale.sh   # REPOS=500 TAGS=10 NOOP_RUNS=5 PLAN_REPOS=50 PLAN_TAGS=1000 by default
#
# 1. Seeds REPOS repositories x TAGS tags (one small image per repository, its tags PUTs of the
#    same manifest bytes) and syncs them cold into an empty registry with dregsy.
# 2. NOOP_RUNS rounds of three, taking turns going first: a dregsy run with nothing to do, and
#    two floors sending the HEAD of every source and every target manifest with dregsy's
#    concurrency (PARALLEL_CHECKS image jobs, each sending its 2 HEADs at once): curl --parallel,
#    and bench/floor.py heads (Python threads on keep-alive connections). Prints each round,
#    the medians, the median of the per-round ratios, the requests each registry saw during the
#    first round (access logs), and dregsy's peak RSS (/usr/bin/time -v).
# 3. `dregsy plan` over PLAN_REPOS x PLAN_TAGS tags, listing only: the mapping keeps the latest
#    version of each repository (`keep: latest 1`), so every tag is listed and filtered and one
#    per repository is checked. Prints its time and peak RSS.
# Run on demand; not part of the tests. Only 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

REPOS=${REPOS:-500}
TAGS=${TAGS:-10}
NOOP_RUNS=${NOOP_RUNS:-5}
PLAN_REPOS=${PLAN_REPOS:-50}
PLAN_TAGS=${PLAN_TAGS:-1000}
# dregsy's default: 4 x native.parallel-images (8) image jobs in flight, each sends its source
# and target HEAD at once (docs/configuration.md, native.parallel-images).
PARALLEL_CHECKS=${PARALLEL_CHECKS:-32}

source bench/lib.sh

peak_rss_mib() { # time -v output file -> MiB
  awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$1"
}

cpu_seconds() { # time -v output file -> user + system CPU seconds
  awk -F': ' '/User time|System time/ {t += $2} END {printf "%.2f", t}' "$1"
}

timed_dregsy() { # name args... -> runs dregsy under /usr/bin/time -v; sets SECONDS_TAKEN, RSS_MIB, CPU
  local name=$1 s e; shift
  s=$(now)
  LOG_FORMAT=json /usr/bin/time -v -o "$work/$name.time" "$DREGSY" "$@" >"$work/$name.out" 2>&1 || {
    echo "dregsy $* failed; last lines:" >&2; tail -n 5 "$work/$name.out" >&2; exit 1
  }
  e=$(now)
  SECONDS_TAKEN=$(python3 -c "print(f'{$e - $s:.3f}')")
  RSS_MIB=$(peak_rss_mib "$work/$name.time")
  CPU=$(cpu_seconds "$work/$name.time")
}

echo "load average before: $(load_average)"
echo "seeding: $REPOS repositories x $TAGS tags"
SRC=$(start_registry source)
DST=$(start_registry target)
python3 bench/floor.py seed-tags "$SRC" "$work/source/storage" "$REPOS" "$TAGS" bench/svc
# The catalog lister holds 100 repositories by default (lister.maxItems); list them all.
cat > "$work/scale.yaml" <<YAML
lister: {maxItems: $REPOS}
tasks:
- name: scale
  source: {registry: 127.0.0.1:$SRC, skip-tls-verify: true}
  target: {registry: 127.0.0.1:$DST, skip-tls-verify: true}
  mappings:
  - {from: 'regex:bench/svc-.*'}
YAML
python3 bench/floor.py heads-config "$SRC" "$DST" bench/svc "$REPOS" "$TAGS" > "$work/heads.curl"
floor_heads() {
  curl -sS --parallel --parallel-max "$((2 * PARALLEL_CHECKS))" -I \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json' \
    -w '%{http_code}\n' -K "$work/heads.curl" > "$work/floor.codes" 2>"$work/floor.err"
  local ok; ok=$(grep -c '^200$' "$work/floor.codes" || true)
  [ "$ok" = "$((2 * REPOS * TAGS))" ] || { echo "floor: $ok of $((2 * REPOS * TAGS)) HEADs answered 200" >&2; exit 1; }
}

s_src=$(log_lines source); s_dst=$(log_lines target)
timed_dregsy cold -config="$work/scale.yaml"
COLD=$SECONDS_TAKEN COLD_RSS=$RSS_MIB COLD_CPU=$CPU
sleep 0.2
COLD_REQ="$(requests_since source "$s_src") + $(requests_since target "$s_dst")"
grep -q "task done: $((REPOS * TAGS)) copied" "$work/cold.out" || {
  echo "the cold run did not copy every image:" >&2; grep 'task done' "$work/cold.out" >&2; exit 1
}

python_heads() {
  python3 bench/floor.py heads "$PARALLEL_CHECKS" "$SRC" "$DST" bench/svc "$REPOS" "$TAGS" >/dev/null
}
noop_dregsy() {
  timed_dregsy "noop-$i" -config="$work/scale.yaml"
  rss+=("$RSS_MIB"); cpu+=("$CPU")
  grep -q "$((REPOS * TAGS)) up to date, 0 skipped, 0 failed" "$work/noop-$i.out" || {
    echo "the no-op run did not find every image up to date:" >&2; grep 'task done' "$work/noop-$i.out" >&2; exit 1
  }
}
count() { # registry from to method -> requests of that method logged between two lines
  sed -n "$(($2 + 1)),$3p" "$work/$1/log" | grep -cE "\"$4 /v2/" || true
}
declare -A times requests
rss=() cpu=() ratio_curl=() ratio_python=() d_times=() c_times=() p_times=()
runners=(noop_dregsy floor_heads python_heads)
for i in $(seq "$NOOP_RUNS"); do
  # The three take turns going first, so that a change in the machine's load does not
  # always fall on the same one.
  for k in 0 1 2; do
    runner=${runners[$(((i + k) % 3))]}
    s_src=$(log_lines source); s_dst=$(log_lines target)
    s=$(now); "$runner"; e=$(now)
    times[$runner]=$(python3 -c "print(f'{$e - $s:.3f}')")
    if [ "$i" = 1 ]; then
      sleep 0.2
      e_src=$(log_lines source); e_dst=$(log_lines target)
      requests[$runner]="source $(count source "$s_src" "$e_src" HEAD) HEAD + $(count source "$s_src" "$e_src" GET) GET, target $(count target "$s_dst" "$e_dst" HEAD) HEAD + $(count target "$s_dst" "$e_dst" GET) GET"
    fi
  done
  d_times+=("${times[noop_dregsy]}"); c_times+=("${times[floor_heads]}"); p_times+=("${times[python_heads]}")
  ratio_curl+=("$(python3 -c "print(f'{${times[noop_dregsy]} / ${times[floor_heads]}:.2f}')")")
  ratio_python+=("$(python3 -c "print(f'{${times[noop_dregsy]} / ${times[python_heads]}:.2f}')")")
  echo "no-op $i: dregsy ${times[noop_dregsy]} s, curl ${times[floor_heads]} s, python ${times[python_heads]} s, load $(load_average)"
done
LOAD_NOOP=$(load_average)

echo "seeding: $PLAN_REPOS repositories x $PLAN_TAGS tags for the plan"
PLAN_SRC=$(start_registry plan-source)
python3 bench/floor.py seed-tags "$PLAN_SRC" "$work/plan-source/storage" "$PLAN_REPOS" "$PLAN_TAGS" bench/many
cat > "$work/plan.yaml" <<YAML
lister: {maxItems: $PLAN_REPOS}
tasks:
- name: plan
  source: {registry: 127.0.0.1:$PLAN_SRC, skip-tls-verify: true}
  target: {registry: 127.0.0.1:$DST, skip-tls-verify: true}
  mappings:
  - {from: 'regex:bench/many-.*', tags: ['keep: latest 1']}
YAML
s_src=$(log_lines plan-source)
timed_dregsy plan plan -config="$work/plan.yaml"
PLAN_TIME=$SECONDS_TAKEN PLAN_RSS=$RSS_MIB PLAN_CPU=$CPU
sleep 0.2
PLAN_REQ=$(requests_since plan-source "$s_src")
grep -q "$((PLAN_REPOS * (PLAN_TAGS - 1))) tag(s) dropped" "$work/plan.out" || {
  echo "the plan did not list every tag:" >&2; tail -n 1 "$work/plan.out" >&2; exit 1
}

echo
echo "## $REPOS repositories x $TAGS tags ($((REPOS * TAGS)) tags), one \`from: regex:\` mapping, registries on 127.0.0.1, $(nproc) cores"
echo
echo "Load average after the no-op rounds: $LOAD_NOOP."
echo
echo "| run | wall time | dregsy CPU (user + system) | peak RSS | requests (source + target) |"
echo "|---|---|---|---|---|"
echo "| dregsy, cold | ${COLD} s | ${COLD_CPU} s | ${COLD_RSS} MiB | $COLD_REQ |"
echo "| dregsy, no-op (median of $NOOP_RUNS) | $(median "${d_times[@]}") s | $(median "${cpu[@]}") s | $(median "${rss[@]}") MiB (max $(printf '%s\n' "${rss[@]}" | sort -n | tail -n 1)) | ${requests[noop_dregsy]} |"
echo "| floor: curl --parallel-max $((2 * PARALLEL_CHECKS)), the same HEADs (median of $NOOP_RUNS) | $(median "${c_times[@]}") s | | | ${requests[floor_heads]} |"
echo "| floor: Python, $PARALLEL_CHECKS jobs of 2 HEADs at once (median of $NOOP_RUNS) | $(median "${p_times[@]}") s | | | ${requests[python_heads]} |"
echo
echo "dregsy no-op / curl floor, per run: ${ratio_curl[*]} (median $(median "${ratio_curl[@]}")x)"
echo
echo "dregsy no-op / Python floor, per run: ${ratio_python[*]} (median $(median "${ratio_python[@]}")x)"
echo
echo "## dregsy plan over $PLAN_REPOS repositories x $PLAN_TAGS tags ($((PLAN_REPOS * PLAN_TAGS)) tags), listing only"
echo
echo "| run | wall time | dregsy CPU (user + system) | peak RSS | source requests |"
echo "|---|---|---|---|---|"
echo "| dregsy plan, \`keep: latest 1\` | ${PLAN_TIME} s | ${PLAN_CPU} s | ${PLAN_RSS} MiB | $PLAN_REQ |"
echo
echo "load average at the end: $(load_average)"
