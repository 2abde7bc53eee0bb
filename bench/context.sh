#!/usr/bin/env bash
# context.sh — fully cached rebuilds of a recipe that copies a big build
# context: strata (and, to compare, an older strata and docker BuildKit) with
# the page cache warm and dropped; prints a Markdown report.
#
# Run as root on Debian 12 (packages: runc, umoci, busybox-static; for the
# docker column docker.io and docker-registry):
#
#   STRATA=bin/strata bash bench/context.sh
#
# Environment:
#   STRATA     strata binary (required)
#   BASELINE   another strata binary to time the same way (optional), such as
#              one built before context sums (git worktree add /tmp/old 1f8e979)
#   PEERS      "docker" (default when docker is installed) or ""
#   RUNS       timed runs per column, median and range kept (default 5)
#   OUT        the report (default bench/results/context-<UTC date>.md)
#
# What it does:
#   1. a context of 60 dirs of 100 files (0.2–60 KB each, half random bytes)
#      and four 50 MiB random files, ~330 MB in 6,004 files, and a recipe on a
#      busybox base (an oci-layout:// made with umoci, as peers.sh makes it;
#      for docker, pushed to a loopback registry on 127.0.0.1:5000 and pulled):
#      copy the context's src/, then run one step;
#   2. per tool: one cold build, one more build (files are remembered once
#      they are 3 s old: the script waits that long first), then RUNS timed
#      builds with the page cache warm, and RUNS with it dropped before each
#      (echo 3 > /proc/sys/vm/drop_caches after a sync);
#   3. every timed build must be fully cached (strata: every step cached in
#      --metadata-file; docker: every step CACHED in its plain progress).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STRATA=$(realpath "${STRATA:?set STRATA=/path/to/strata}")
BASELINE=${BASELINE:+$(realpath "$BASELINE")}
if [[ -z ${PEERS+x} ]]; then
	PEERS=$([[ -x /usr/bin/docker ]] && echo docker || echo "")
fi
RUNS=${RUNS:-5}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$here/results/context-$stamp.md}
REGISTRY=127.0.0.1:5000
DOCKER=/usr/bin/docker # Debian's client; /usr/local/bin/docker is another one

log() { printf '[context %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (strata's run step and drop_caches need it)"
if [[ $PEERS == *docker* ]] && (exec 3<>/dev/tcp/127.0.0.1/5000) 2>/dev/null; then
	die "127.0.0.1:5000 is already in use (another registry?); stop it first"
fi
WORK=$(mktemp -d /tmp/cx.XXXXXX) # short: the dockerd socket path lives here
LOGDIR=$WORK/logs
mkdir -p "$LOGDIR" "$(dirname "$OUT")"
registry_pid="" dockerd_pid=""
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

trap cleanup_and_keep_logs EXIT
trap 'exit 130' INT TERM
varlib_up # skopeo, seeding the registry, sees a private /var/lib/containers (lib.sh)

# ------------------------------------------------------------- the context

CTX=$WORK/ctx
log "writing the context"
mkdir -p "$CTX/src"
sizes=(200 2000 20000 60000)
for ((d = 0; d < 60; d++)); do
	mkdir "$CTX/src/pkg$d"
	for ((f = 0; f < 100; f++)); do
		n=${sizes[$(((d * 100 + f) * 7 % 4))]}
		{ head -c $((n / 2)) /dev/urandom; head -c $((n / 2)) /dev/zero; } >"$CTX/src/pkg$d/f$f.js"
	done
done
for ((i = 0; i < 4; i++)); do head -c $((50 << 20)) /dev/urandom >"$CTX/src/big$i.bin"; done
files=$(find "$CTX/src" -type f | wc -l)
bytes=$(du -sb "$CTX/src" | cut -f1)

make_busybox
cat >"$CTX/strata.yaml" <<EOF
from: oci-layout://$WORK/busybox-oci:latest
steps:
  - copy: src
    to: /app/src
  - run: ls /app/src | wc -l
EOF
cat >"$CTX/Dockerfile" <<EOF
FROM $REGISTRY/library/busybox:latest
COPY src /app/src
RUN ls /app/src | wc -l
EOF

# ---------------------------------------------------------------- timing

# timed FILE CMD...: runs CMD, appends its wall seconds to FILE
timed() {
	local file=$1 start end
	shift
	start=$(now)
	"$@" >>"$LOGDIR/builds.log" 2>&1 || die "$* failed; see $LOGDIR/builds.log"
	end=$(now)
	echo "$end - $start" | bc >>"$file"
}

declare -A result

# measure NAME CMD...: a cold build and a second one, then RUNS warm and RUNS
# dropped, each checked fully cached by check_NAME
measure() {
	local name=$1 i
	shift
	log "$name: cold build"
	"$@" >>"$LOGDIR/builds.log" 2>&1 || die "$name's cold build failed; see $LOGDIR/builds.log"
	sleep 3.5 # the context's files settle: the next build remembers them
	"$@" >>"$LOGDIR/builds.log" 2>&1 || die "$name's second build failed"
	log "$name: $RUNS warm, $RUNS with the page cache dropped"
	for ((i = 0; i < RUNS; i++)); do
		timed "$WORK/$name.warm" "$@"
		"check_$name"
	done
	for ((i = 0; i < RUNS; i++)); do
		drop_caches
		timed "$WORK/$name.cold" "$@"
		"check_$name"
	done
	result[$name]="$(stats "$WORK/$name.warm") | $(stats "$WORK/$name.cold")"
}

strata_build() { # strata_build BIN NAME: a build on the root of NAME
	local bin=$1 root=$WORK/root-$2
	"$bin" build -q --root "$root" --metadata-file "$WORK/m.json" -o "type=oci,dest=$WORK/out" "$CTX"
}
check_cached() {
	jq -e '[.steps[] | select(.cached != true)] | length == 0' "$WORK/m.json" >/dev/null ||
		die "a timed strata build ran a step: $(jq -c '[.steps[] | {pos, cached}]' "$WORK/m.json")"
}
check_strata() { check_cached; }
check_baseline() { check_cached; }

measure strata strata_build "$STRATA" new
if [[ -n $BASELINE ]]; then
	measure baseline strata_build "$BASELINE" old
fi

if [[ $PEERS == *docker* ]]; then
	export DOCKER_HOST=unix://$WORK/d.sock DOCKER_BUILDKIT=1 DOCKER_CONFIG=$WORK/docker-config
	mkdir -p "$DOCKER_CONFIG" && echo '{}' >"$DOCKER_CONFIG/config.json"
	registry_up
	seed "$WORK/busybox-oci:latest" library/busybox:latest
	dockerd_up "$WORK/docker"
	"$DOCKER" pull "$REGISTRY/library/busybox:latest" >>"$LOGDIR/builds.log" 2>&1
	docker_build() {
		"$DOCKER" build --progress=plain --network none -t bench/context:1 "$CTX" 2>&1 | tee "$WORK/docker.out"
	}
	check_docker() {
		[[ $(grep -cE '^#[0-9]+ CACHED' "$WORK/docker.out") -ge 2 ]] ||
			die "a timed docker build ran a step; see $WORK/docker.out"
	}
	measure docker docker_build
fi

# ---------------------------------------------------------------- report

{
	echo "## Fully cached rebuilds of a big context — $(date -u +%F)"
	echo
	echo "Produced by \`bench/context.sh\` (RUNS=$RUNS, started $stamp)."
	echo
	echo "- $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
	echo "- the context: $files files, $bytes bytes; \`$WORK\` on $(findmnt -n -o FSTYPE --target "$WORK")"
	echo "- strata: \`$STRATA version\`: $("$STRATA" version 2>&1 | head -1)"
	[[ -z $BASELINE ]] || echo "- baseline: \`$BASELINE version\`: $("$BASELINE" version 2>&1 | head -1)"
	[[ $PEERS != *docker* ]] || echo "- docker: $("$DOCKER" version --format '{{.Server.Version}}') (BuildKit in dockerd)"
	echo
	echo "Seconds: median (min–max) of $RUNS, the whole command."
	echo
	echo "| tool | page cache warm | page cache dropped |"
	echo "|---|---|---|"
	for name in strata baseline docker; do
		[[ -z ${result[$name]+x} ]] || echo "| $name | ${result[$name]} |"
	done
} >"$OUT"
cat "$OUT"
log "report: $OUT"
