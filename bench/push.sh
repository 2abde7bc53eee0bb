#!/usr/bin/env bash
# push.sh — cold build + push of a debian workload, to the loopback registry
# directly and through an uplink of RATE bytes a second (bench/slowlink in
# front of the registry, like a CI runner pushing to a registry elsewhere):
# strata, and another strata binary to compare (BASELINE), in turn; prints a
# Markdown report.
#
# Run as root on Debian 12 (packages: runc, docker-registry, skopeo, umoci,
# debootstrap, jq; Go to build bench/slowlink):
#
#   STRATA=bin/strata BASELINE=/tmp/old/strata bash bench/push.sh
#
# Environment:
#   STRATA     strata binary (required)
#   BASELINE   another strata binary timed the same way (optional), such as one
#              built before uploads followed compression (git worktree add
#              /tmp/old 17764c1)
#   WORKLOAD   debian-offline (default) or debian-apt, from bench/workloads
#   RATE       the uplink, bytes a second, shared by all connections
#              (default 50000000)
#   RUNS       cold build + push runs per binary and link (default 5)
#   STATE      the dir the --roots are made in (default: in the script's temp
#              dir); bench/peers.sh keeps its on a loop-mounted ext4
#   BENCH_CACHE where the debian base is made once (default /var/cache/strata-bench,
#              shared with bench/peers.sh)
#   OUT        the report (default bench/results/push-<UTC date>.md)
#
# Each run: a new --root, the page cache dropped, then `strata build --push`
# of the workload, its base pulled from the registry on 127.0.0.1:5000; the
# tag is on 127.0.0.1:5000 ("direct") or on 127.0.0.1:5001, slowlink's port
# ("uplink"), a repository of its own, so that no layer is there already
# (the first layer of the workloads is the same blob at every build, which a
# push does not upload again). The base layer is mounted from library/debian,
# in the same registry, so it never crosses the link. The binaries take
# turns, so the machine's drift falls on both.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STRATA=$(realpath "${STRATA:?set STRATA=/path/to/strata}")
BASELINE=${BASELINE:+$(realpath "$BASELINE")}
WORKLOAD=${WORKLOAD:-debian-offline}
RATE=${RATE:-50000000}
RUNS=${RUNS:-5}
BENCH_CACHE=${BENCH_CACHE:-/var/cache/strata-bench}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$here/results/push-$stamp.md}
REGISTRY=127.0.0.1:5000
UPLINK=127.0.0.1:5001

log() { printf '[push %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (strata's run steps and drop_caches need it)"
[[ -f $here/workloads/$WORKLOAD/strata.yaml && $WORKLOAD == debian-* ]] ||
	die "WORKLOAD must be debian-offline or debian-apt, got '$WORKLOAD'"
for port in 5000 5001; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		die "127.0.0.1:$port is already in use; stop what listens there first"
	fi
done
WORK=$(mktemp -d /tmp/px.XXXXXX)
LOGDIR=$WORK/logs
STATE=${STATE:-$WORK/state}
mkdir -p "$LOGDIR" "$STATE" "$(dirname "$OUT")"
registry_pid="" dockerd_pid="" slowlink_pid=""
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

# push_cleanup: the EXIT trap: slowlink stopped, the roots removed, then
# lib.sh's cleanup (the registry, WORK; the logs kept on failure).
push_cleanup() {
	local rc=$? root
	set +e
	stop_pid "$slowlink_pid"
	for root in "$STATE"/push-root-*; do
		[[ -e $root ]] || continue
		unmount_under "$root"
		rm -rf "$root"
	done
	(exit "$rc")
	cleanup_and_keep_logs
}
trap push_cleanup EXIT
trap 'exit 130' INT TERM
varlib_up # skopeo, seeding the registry, sees a private /var/lib/containers (lib.sh)

make_debian
registry_up
seed "$BENCH_CACHE/debian-bookworm-oci:bookworm" library/debian:bookworm
log "building bench/slowlink"
(cd "$here/.." && go build -o "$WORK/slowlink" ./bench/slowlink) || die "building bench/slowlink failed"
"$WORK/slowlink" -listen "$UPLINK" -to "$REGISTRY" -rate "$RATE" >>"$LOGDIR/slowlink.log" 2>&1 &
slowlink_pid=$!
wait_http "http://$UPLINK/v2/" "$slowlink_pid" || die "slowlink did not start; see $LOGDIR/slowlink.log"

ctx=$here/workloads/$WORKLOAD
# push BIN NAME ADDR RUN: one cold build + push; its wall seconds are appended
# to $WORK/NAME.ADDR
push() {
	local bin=$1 name=$2 addr=$3 run=$4 root=$STATE/push-root-$2 start end
	rm -rf "$root"
	drop_caches
	start=$(now)
	"$bin" build --root "$root" --progress plain -f "$ctx/strata.yaml" \
		-t "$addr/bench/push-$name-${addr##*:}-$run:1" --push "$ctx" >>"$LOGDIR/builds.log" 2>&1 ||
		die "$name's build + push to $addr failed; see $LOGDIR/builds.log"
	end=$(now)
	echo "$end - $start" | bc >>"$WORK/$name.$addr"
}

names=(strata)
[[ -z $BASELINE ]] || names+=(baseline)
declare -A bin=([strata]=$STRATA [baseline]=$BASELINE)
for addr in "$REGISTRY" "$UPLINK"; do
	log "cold build + push to $addr: $RUNS runs of ${names[*]} in turn"
	for ((run = 1; run <= RUNS; run++)); do
		for name in "${names[@]}"; do
			push "${bin[$name]}" "$name" "$addr" "$run"
		done
	done
done

{
	echo "## Cold build + push over an uplink — $(date -u +%F)"
	echo
	echo "Produced by \`bench/push.sh\` (WORKLOAD=$WORKLOAD, RATE=$RATE, RUNS=$RUNS, started $stamp)."
	echo
	echo "- $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
	echo "- the roots on $(findmnt -n -o FSTYPE --target "$STATE") (\`$STATE\`), the registry's storage on $(findmnt -n -o FSTYPE --target "$WORK")"
	echo "- strata: \`$STRATA version\`: $("$STRATA" version 2>&1 | head -1)"
	[[ -z $BASELINE ]] || echo "- baseline: \`$BASELINE version\`: $("$BASELINE" version 2>&1 | head -1)"
	echo
	echo "Seconds: median (min–max) of $RUNS, the whole \`strata build --push\`, from an empty \`--root\`;"
	echo "each run to a repository of its own (the base layer mounted from library/debian, not uploaded)."
	echo
	echo "| binary | to the registry directly | through $((RATE / 1000000)) MB/s |"
	echo "|---|---|---|"
	for name in "${names[@]}"; do
		echo "| $name | $(stats "$WORK/$name.$REGISTRY") | $(stats "$WORK/$name.$UPLINK") |"
	done
} >"$OUT"
cat "$OUT"
log "report: $OUT"
