#!/usr/bin/env bash
# compression.sh — layer compression: the layers strata builds for the bench
# workloads (bench/workloads/*), compressed at every codec and level
# considered, against what docker (BuildKit in dockerd, compressing at push)
# and buildah push for the same builds; prints a Markdown report.
#
# Run as root on Debian 12 (packages: docker.io, buildah, runc, docker-registry,
# busybox-static, umoci, skopeo, debootstrap, curl, openssl):
#
#   STRATA=bin/strata bash bench/compression.sh
#
# Environment:
#   STRATA        strata binary (required)
#   WORKLOADS     default "busybox debian node"
#   CANDIDATES    CODEC:LEVEL pairs for bench/compress (default below); codecs:
#                 pgzip (klauspost/pgzip: strata's gzip, and buildah's), gzip
#                 (klauspost/compress, one stream: strata's before), stdgzip
#                 (Go's compress/gzip: docker's), zstd (klauspost/compress)
#   RUNS          timed runs per layer and candidate, median kept (default 3)
#   PEERS         "docker buildah" (default) or a subset, or "" for none
#   DEBIAN_OCI    an OCI layout of debootstrap --variant=minbase bookworm, tagged
#                 bookworm (default: peers.sh's in BENCH_CACHE, else the one the
#                 privileged tests make, /tmp/strata-test-debian-bookworm)
#   OUT           the report (default bench/results/compression-<UTC date>.md)
#
# What it does:
#   1. a loopback registry (127.0.0.1:5000, as the workloads name it) seeded
#      with the bases: busybox (made with umoci, as peers.sh does) and debian
#      (debootstrap --variant=minbase bookworm);
#   2. per workload, strata builds it (-o type=oci) on a fresh --root; the
#      workload's own layers (not the base's) are decompressed into tars;
#   3. each tar is compressed by bench/compress with every candidate, as
#      strata commits a layer (one pass, tar and blob hashed, blob written to
#      a file); size and median time are recorded;
#   4. docker and buildah build the workload's Dockerfile and push it; the
#      sizes of the layers they push above the base are read from the
#      registry's manifest.
# Sizes are sums over a workload's own layers. The tars of docker and buildah
# hold the same files as strata's (mtimes and header details differ), so the
# stdgzip and pgzip rows show their compressors on strata's tars, and the
# "pushed" rows what they really push.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STRATA=${STRATA:?set STRATA=/path/to/strata}
STRATA=$(realpath "$STRATA")
WORKLOADS=${WORKLOADS:-"busybox debian node"}
CANDIDATES=${CANDIDATES:-"stdgzip:6 gzip:1 gzip:3 gzip:5 gzip:6 gzip:9 pgzip:1 pgzip:3 pgzip:4 pgzip:5 pgzip:6 zstd:1 zstd:3 zstd:6"}
RUNS=${RUNS:-3}
PEERS=${PEERS-"docker buildah"}
BENCH_CACHE=${BENCH_CACHE:-/var/cache/strata-bench}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$here/results/compression-$stamp.md}
REGISTRY=127.0.0.1:5000

log() { printf '[compression %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root"
if (exec 3<>/dev/tcp/127.0.0.1/5000) 2>/dev/null; then
	die "127.0.0.1:5000 is already in use (another registry?); stop it first"
fi
WORK=$(mktemp -d /tmp/cb.XXXXXX)
LOGDIR=$WORK/logs
mkdir -p "$LOGDIR" "$(dirname "$OUT")"
registry_pid="" dockerd_pid=""
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

trap cleanup_and_keep_logs EXIT
trap 'exit 130' INT TERM
varlib_up # buildah and skopeo see a private /var/lib/containers (lib.sh)

# ---------------------------------------------------------------- setup

log "building bench/compress"
(cd "$here/.." && go build -o "$WORK/compress" ./bench/compress)
registry_up

make_debian() { # the debootstrapped layout peers.sh or the tests made
	local oci=${DEBIAN_OCI:-}
	for d in "$BENCH_CACHE/debian-bookworm-oci" /tmp/strata-test-debian-bookworm; do
		[[ -n $oci ]] || { [[ -f $d/index.json ]] && oci=$d; }
	done
	[[ -n $oci ]] || die "no debian layout: run bench/peers.sh once with WORKLOADS=debian, or the privileged tests (internal/testutil.DebianLayout), or set DEBIAN_OCI"
	# Pushed by strata: skopeo 1.9 finds no image in a layout whose index
	# names a docker-typed manifest (as the tests' layout does).
	mkdir -p "$WORK/seed"
	echo "from: oci-layout://$oci:bookworm" >"$WORK/seed/strata.yaml"
	"$STRATA" build --root "$WORK/seed-root" -t "$REGISTRY/library/debian:bookworm" --push "$WORK/seed" >>"$LOGDIR/seed.log" 2>&1 ||
		die "pushing the debian base failed; see $LOGDIR/seed.log"
}

make_context() { # make_context WORKLOAD: the build context, as peers.sh makes it
	local ctx=$WORK/ctx/$1
	mkdir -p "$ctx"
	cp -r "$here/workloads/$1/." "$ctx/"
	if [[ $1 == busybox ]]; then
		mkdir -p "$ctx/data/bin" "$ctx/data/text"
		head -c $((300 * 16384)) /dev/zero |
			openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f \
				-iv 00000000000000000000000000000000 |
			split -b 16384 -d -a 3 - "$ctx/data/bin/part-"
		for ((i = 0; i < 30; i++)); do
			seq -f "line %g of text file $i: the quick brown fox jumps over the lazy dog" 1 $((200 + i * 10)) >"$ctx/data/text/t$i.txt"
		done
	fi
	find "$ctx" -exec touch -h -d @1700000000 {} +
}

net_for() { case $1 in busybox) echo none ;; *) echo host ;; esac; }
base_of() { case $1 in busybox) echo library/busybox:latest ;; *) echo library/debian:bookworm ;; esac; }

# base_layers REPO:TAG: how many layers the base has
base_layers() {
	skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/$1" | jq '.layers | length'
}

# pushed_sizes REPO:TAG BASE_LAYERS: the sizes of the layers above the base
pushed_sizes() {
	skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/$1" | jq -r --argjson n "$2" '.layers[$n:][] | .size'
}

# ---------------------------------------------------------------- strata

# strata_tars WORKLOAD: builds it, writes its own layers as tars to $WORK/tars/WL-N.tar
strata_tars() {
	local wl=$1 out=$WORK/strata-out/$1 n
	"$STRATA" build --root "$WORK/strata-root" -o "type=oci,dest=$out" "$WORK/ctx/$wl" >>"$LOGDIR/strata-$wl.log" 2>&1 ||
		die "strata build of $wl failed; see $LOGDIR/strata-$wl.log"
	n=$(base_layers "$(base_of "$wl")")
	local manifest i=0
	manifest=$(jq -r '.manifests[0].digest | sub("sha256:"; "")' "$out/index.json")
	mkdir -p "$WORK/tars"
	for d in $(jq -r --argjson n "$n" '.layers[$n:][] | .digest | sub("sha256:"; "")' "$out/blobs/sha256/$manifest"); do
		i=$((i + 1))
		gzip -dc "$out/blobs/sha256/$d" >"$WORK/tars/$wl-$i.tar"
	done
}

# ---------------------------------------------------------------- peers

DOCKER=/usr/bin/docker # Debian's client; /usr/local/bin/docker may be another one
DOCKER_HOST=unix://$WORK/d.sock
export DOCKER_HOST DOCKER_BUILDKIT=1 DOCKER_CONFIG=$WORK/docker-config
mkdir -p "$DOCKER_CONFIG" && echo '{}' >"$DOCKER_CONFIG/config.json"

docker_push_sizes() { # docker_push_sizes WORKLOAD
	local wl=$1 ref=$REGISTRY/bench/docker-$1:1
	"$DOCKER" build --network "$(net_for "$wl")" -t "$ref" "$WORK/ctx/$wl" >>"$LOGDIR/docker-$wl.log" 2>&1 &&
		"$DOCKER" push "$ref" >>"$LOGDIR/docker-$wl.log" 2>&1 ||
		die "docker build/push of $wl failed; see $LOGDIR/docker-$wl.log"
	pushed_sizes "bench/docker-$wl:1" "$(base_layers "$(base_of "$wl")")"
}

buildah_push_sizes() { # buildah_push_sizes WORKLOAD
	local wl=$1 ref=$REGISTRY/bench/buildah-$1:1
	local b=(with_varlib "$WORK/varlib" buildah --root "$WORK/buildah/root" --runroot "$WORK/buildah/run" --storage-driver overlay)
	"${b[@]}" build --runtime runc --isolation oci --layers --network "$(net_for "$wl")" --tls-verify=false \
		-t "$ref" "$WORK/ctx/$wl" >>"$LOGDIR/buildah-$wl.log" 2>&1 &&
		"${b[@]}" push --tls-verify=false "$ref" >>"$LOGDIR/buildah-$wl.log" 2>&1 ||
		die "buildah build/push of $wl failed; see $LOGDIR/buildah-$wl.log"
	pushed_sizes "bench/buildah-$wl:1" "$(base_layers "$(base_of "$wl")")"
}

# ---------------------------------------------------------------- run

make_busybox >>"$LOGDIR/base-images.log" 2>&1 || die "making the busybox base failed; see $LOGDIR/base-images.log"
seed "$WORK/busybox-oci:latest" library/busybox:latest
if [[ " $WORKLOADS " != " busybox " ]]; then make_debian; fi

# Started here, not where docker_push_sizes runs: that is a command
# substitution, whose dockerd_pid the cleanup would never see.
if [[ " $PEERS " == *" docker "* ]]; then dockerd_up "$WORK/docker"; fi

declare -A SIZE TIME TARBYTES PUSHED
for wl in $WORKLOADS; do
	make_context "$wl"
	log "$wl: strata build"
	strata_tars "$wl"
	TARBYTES[$wl]=$(cat "$WORK"/tars/"$wl"-*.tar | wc -c)
	for c in $CANDIDATES; do
		codec=${c%%:*} level=${c##*:}
		read -r bytes secs < <("$WORK/compress" -codec "$codec" -level "$level" -n "$RUNS" "$WORK"/tars/"$wl"-*.tar |
			awk '{ b += $5; s += $6 } END { print b, s }')
		SIZE[$wl|$c]=$bytes TIME[$wl|$c]=$secs
		log "$wl $c: $bytes bytes, $secs s"
	done
	for peer in $PEERS; do
		log "$wl: $peer build + push"
		PUSHED[$wl|$peer]=$("${peer}_push_sizes" "$wl" | awk '{ s += $1 } END { print s + 0 }')
	done
done

# ---------------------------------------------------------------- report

mb() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e6 }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%+.1f%%", (a / b - 1) * 100; else printf "n/a" }'; }
{
	echo "## Layer compression — $(date -u +%Y-%m-%d)"
	echo
	echo "Produced by \`bench/compression.sh\` (RUNS=$RUNS, started $stamp) on $(nproc) cores"
	echo "($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r), Debian $(cat /etc/debian_version);"
	echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
	echo
	for wl in $WORKLOADS; do
		echo "### $wl: $(ls "$WORK"/tars/"$wl"-*.tar | wc -l) layers above the base, $(mb "${TARBYTES[$wl]}") MB of tar"
		echo
		echo "| compressor | MB | vs docker pushed | vs buildah pushed | seconds (median of $RUNS) |"
		echo "|---|---|---|---|---|"
		for peer in $PEERS; do
			echo "| $peer, pushed | $(mb "${PUSHED[$wl|$peer]}") | $(pct "${PUSHED[$wl|$peer]}" "${PUSHED[$wl|docker]:-0}") | $(pct "${PUSHED[$wl|$peer]}" "${PUSHED[$wl|buildah]:-0}") | |"
		done
		for c in $CANDIDATES; do
			echo "| $c | $(mb "${SIZE[$wl|$c]}") | $(pct "${SIZE[$wl|$c]}" "${PUSHED[$wl|docker]:-0}") | $(pct "${SIZE[$wl|$c]}" "${PUSHED[$wl|buildah]:-0}") | ${TIME[$wl|$c]} |"
		done
		echo
	done
} | tee "$OUT"
log "report: $OUT"
