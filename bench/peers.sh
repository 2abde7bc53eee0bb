#!/usr/bin/env bash
# peers.sh — time strata against docker (BuildKit inside dockerd) and buildah on
# the same workloads (bench/workloads/*: a Dockerfile and an equivalent
# strata.yaml each), on loopback only, and print a Markdown report.
#
# Run as root on Debian 12 (packages: docker.io, buildah, runc, docker-registry,
# busybox-static, umoci, skopeo, debootstrap):
#
#   bash bench/peers.sh                          # strata from $PATH, if any
#   STRATA=/path/to/strata RUNS=5 bash bench/peers.sh
#
# Environment:
#   STRATA        strata binary (default: `strata` on $PATH). Missing or failing:
#                 its cells read "n/a (reason)" and the peers still run.
#   RUNS          repetitions per workload x tool (default 3)
#   WORKLOADS     default "busybox debian-apt debian-offline" (the cold-builds
#                 issue's three); "debian" (apt install curl, ca-certificates,
#                 jq; the earlier measurements') and "node" (Node.js from
#                 Debian, ~380 MB) too
#   TOOLS         default "strata docker buildah"
#   BENCH_FS      where every tool's state lives: "loop" (default), a journaled
#                 ext4 made by the script on a loop device backed by a sparse
#                 file in its temp dir; or "root", the temp dir itself. (On a
#                 filesystem without a journal, as this machine's root is,
#                 ext4 skips the inodes deleted in the last 60-300 s one by one
#                 when it allocates one, so file creation costs depend on what
#                 any process deleted minutes before: each tool would pay for
#                 the state the one before it removed.)
#   BENCH_CACHE   where the debootstrap rootfs tarball and the debian OCI layout
#                 are cached (default /var/cache/strata-bench)
#   DEBIAN_MIRROR default: the first bookworm URI in /etc/apt/sources.list{,.d}
#   OUT           the report file (default bench/results/peers-<UTC date>.md);
#                 the report also goes to stdout, progress to stderr, and each
#                 command's output to OUT's .logs directory.
#
# What one run of one tool on one workload does (repeated RUNS times, tools
# interleaved within a run so that background noise spreads over all of them):
#   1. the loopback registry (127.0.0.1:5000) is wiped and re-seeded with the
#      base images, so every push uploads everything but the base layers;
#   2. the tool gets fresh state: a new dockerd data root, a new buildah
#      --root/--runroot, a new strata --root. Nothing is cached. docker and
#      buildah then pull the base image (not timed: their cold build starts
#      with the base in their stores); strata's cold build starts from an
#      empty --root and pulls and unpacks the base itself;
#   3. cold build, push, cached rebuild — timed separately (wall clock of the
#      client command); for strata also a --no-cache build on the warm root
#      (the base present, every step run: what docker's cold build does).
#      strata writes --metadata-file on its cold and --no-cache builds (the
#      phases of its time), docker --progress=plain (its steps' times).
#      "cold build + push" is the sum of cold build and push for docker and
#      buildah; strata builds and pushes in one command, so for it that
#      column is timed on its own fresh state and fresh registry:
#        strata build --root DIR -t REF --push CTX
#   4. the state is torn down (dockerd stopped, mounts unmounted, dirs removed).
#
# Nothing is left behind: dockerd, the registry and every mount are stopped or
# removed on exit (also on error or Ctrl-C); buildah's global blob-info cache
# (/var/lib/containers/cache) is removed after every buildah run when it did
# not exist before the script started.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUNS=${RUNS:-3}
WORKLOADS=${WORKLOADS:-"busybox debian-apt debian-offline"}
TOOLS=${TOOLS:-"strata docker buildah"}
BENCH_FS=${BENCH_FS:-loop}
BENCH_CACHE=${BENCH_CACHE:-/var/cache/strata-bench}
STRATA=${STRATA:-$(command -v strata || true)}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$here/results/peers-$stamp.md}
LOGDIR=${OUT%.md}.logs

REGISTRY=127.0.0.1:5000
DOCKER=/usr/bin/docker      # Debian's client; /usr/local/bin/docker is another one
DOCKERD=/usr/sbin/dockerd
BUILDAH=/usr/bin/buildah

log() { printf '[peers %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (dockerd, buildah and strata need it)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"
[[ $BENCH_FS == loop || $BENCH_FS == root ]] || die "BENCH_FS must be loop or root, got '$BENCH_FS'"
for bin in "$DOCKER" "$DOCKERD" "$BUILDAH" /usr/sbin/runc /usr/bin/docker-registry \
	/bin/busybox /usr/bin/umoci /usr/bin/skopeo /usr/sbin/debootstrap curl jq /usr/sbin/mkfs.ext4; do
	command -v "$bin" >/dev/null ||
		die "$bin missing: apt-get install -y docker.io buildah runc docker-registry busybox-static umoci skopeo debootstrap curl jq e2fsprogs"
done
if (exec 3<>/dev/tcp/127.0.0.1/5000) 2>/dev/null; then
	die "127.0.0.1:5000 is already in use (another registry?); stop it first"
fi

WORK=$(mktemp -d /tmp/sb.XXXXXX) # short: the dockerd socket path lives here
mkdir -p "$LOGDIR" "$(dirname "$OUT")"
STATE=$WORK/fs # every tool's state: docker's data root, buildah's, strata's

# ---------------------------------------------------------------- cleanup

registry_pid="" dockerd_pid="" buildah_root=""
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

cleanup() {
	local rc=$?
	set +e
	docker_down
	buildah_down
	strata_down
	stop_pid "$registry_pid"
	registry_pid=""
	varlib_down
	unmount_under "$WORK"
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
varlib_up

# ---------------------------------------------------------------- state fs

# BENCH_FS=loop: a journaled ext4 (inode tables and journal written now, so
# no lazy init runs during the timed runs) on a sparse file in WORK, mounted
# at STATE for the whole script; cleanup unmounts it, which frees the loop
# device.
state_fs_up() {
	mkdir -p "$STATE"
	[[ $BENCH_FS == loop ]] || return 0
	truncate -s 16G "$WORK/fs.img"
	mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$WORK/fs.img" >>"$LOGDIR/mkfs.log" 2>&1 ||
		die "mkfs.ext4 failed; see $LOGDIR/mkfs.log"
	mount -o loop "$WORK/fs.img" "$STATE" || die "mounting the state filesystem failed"
}

# ---------------------------------------------------------------- registry

# registry_reset WORKLOAD: a fresh, empty registry holding only WORKLOAD's base.
registry_reset() {
	stop_pid "$registry_pid"
	registry_pid=""
	rm -rf "$WORK/registry"
	registry_up
	case $1 in
	busybox) seed "$WORK/busybox-oci:latest" library/busybox:latest ;;
	debian | debian-* | node) seed "$BENCH_CACHE/debian-bookworm-oci:bookworm" library/debian:bookworm ;;
	esac
}

# ---------------------------------------------------------------- base images

# 127.0.0.1:5000/library/busybox:latest: make_busybox (lib.sh), pushed for
# every run; 127.0.0.1:5000/library/debian:bookworm: make_debian (lib.sh).

# ---------------------------------------------------------------- contexts

# The busybox context: ~5 MB in ~330 files, the same bytes every time
# (AES-CTR keystream of a fixed key for binary data, seq for text).
make_contexts() {
	local wl ctx
	for wl in $WORKLOADS; do
		ctx=$WORK/ctx/$wl
		mkdir -p "$ctx"
		cp -r "$here/workloads/$wl/." "$ctx/"
	done
	if [[ " $WORKLOADS " == *" busybox "* ]]; then
		ctx=$WORK/ctx/busybox
		mkdir -p "$ctx/data/bin" "$ctx/data/text"
		head -c $((300 * 16384)) /dev/zero |
			openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f \
				-iv 00000000000000000000000000000000 |
			split -b 16384 -d -a 3 - "$ctx/data/bin/part-"
		local i
		for ((i = 0; i < 30; i++)); do
			seq -f "line %g of text file $i: the quick brown fox jumps over the lazy dog" 1 $((200 + i * 10)) \
				>"$ctx/data/text/t$i.txt"
		done
		find "$ctx" -exec touch -h -d @1700000000 {} +
	fi
}

# network mode of the peers' whole build (see the Dockerfiles' comments)
net_for() { case $1 in debian | debian-apt | node) echo host ;; *) echo none ;; esac; }

# base_of WORKLOAD: the base image in the loopback registry
base_of() { case $1 in busybox) echo "$REGISTRY/library/busybox:latest" ;; *) echo "$REGISTRY/library/debian:bookworm" ;; esac; }

# ---------------------------------------------------------------- docker

DOCKER_SOCK=unix://$WORK/d.sock
export DOCKER_HOST=$DOCKER_SOCK DOCKER_BUILDKIT=1 DOCKER_CONFIG=$WORK/docker-config
mkdir -p "$DOCKER_CONFIG"
# no credentials (the registry has no auth); buildah fails on a DOCKER_CONFIG
# without config.json ("checking authfile: stat ...: no such file")
echo '{}' >"$DOCKER_CONFIG/config.json"

docker_up() {
	local root=$WORK/docker # the exec root's socket paths must stay short
	mkdir -p "$STATE/docker-data" "$root/exec"
	cat >"$root/daemon.json" <<-EOF
		{"insecure-registries": ["$REGISTRY"], "features": {"buildkit": true}}
	EOF
	"$DOCKERD" --config-file "$root/daemon.json" --iptables=false --ip-masq=false --bridge=none \
		--data-root "$STATE/docker-data" --exec-root "$root/exec" --pidfile "$root/dockerd.pid" \
		-H "$DOCKER_SOCK" >>"$LOGDIR/dockerd.log" 2>&1 &
	dockerd_pid=$!
	local i
	for ((i = 0; i < 300; i++)); do
		"$DOCKER" version >/dev/null 2>&1 && return 0
		kill -0 "$dockerd_pid" 2>/dev/null || break
		sleep 0.1
	done
	die "dockerd did not start; see $LOGDIR/dockerd.log"
}

docker_down() { # stops dockerd (and the containerd it started), removes its state
	stop_pid "$dockerd_pid"
	dockerd_pid=""
	unmount_under "$WORK/docker"
	unmount_under "$STATE/docker-data"
	rm -rf "$WORK/docker" "$STATE/docker-data"
}

# docker_build WORKLOAD (cold or cached: the same command); its plain
# progress, with each step's time, is also kept in $WORK/last-build.out
docker_build() {
	"$DOCKER" build --progress=plain --network "$(net_for "$1")" \
		-t "$REGISTRY/bench/docker-$1:1" -f "$WORK/ctx/$1/Dockerfile" "$WORK/ctx/$1" 2>&1 |
		tee "$WORK/last-build.out"
}
docker_push() { "$DOCKER" push "$REGISTRY/bench/docker-$1:1"; }
docker_pull() { "$DOCKER" pull "$(base_of "$1")"; }

# docker_steps FILE: the seconds docker's RUN, COPY and ADD steps took, from
# a --progress=plain log (a vertex "#N [i/n] RUN ..." then "#N DONE 1.2s")
docker_steps() {
	awk '
		$1 ~ /^#[0-9]+$/ && $2 ~ /^\[[0-9]+\/[0-9]+\]$/ && ($3 == "RUN" || $3 == "COPY" || $3 == "ADD") { step[$1] = 1 }
		$1 ~ /^#[0-9]+$/ && $2 == "DONE" && step[$1] { sub(/s$/, "", $3); t += $3; step[$1] = 0 }
		END { printf "%d\n", t * 1000 }' "$1"
}

# ---------------------------------------------------------------- buildah


buildah_g() { with_varlib "$STATE/buildah/varlib" "$BUILDAH" --root "$STATE/buildah/root" --runroot "$STATE/buildah/runroot" --storage-driver overlay "$@"; }

buildah_up() {
	mkdir -p "$STATE/buildah/root" "$STATE/buildah/runroot"
	buildah_root=$STATE/buildah
}

buildah_down() {
	[[ -n $buildah_root ]] || return 0
	buildah_g rm -a >/dev/null 2>&1 || true
	unmount_under "$buildah_root"
	rm -rf "$buildah_root"
	buildah_root=""
}

buildah_build() {
	buildah_g build --runtime runc --isolation oci --layers --network "$(net_for "$1")" \
		--tls-verify=false -t "$REGISTRY/bench/buildah-$1:1" -f "$WORK/ctx/$1/Dockerfile" "$WORK/ctx/$1"
}
buildah_push() { buildah_g push --tls-verify=false "$REGISTRY/bench/buildah-$1:1"; }
buildah_pull() { buildah_g pull --tls-verify=false "$(base_of "$1")"; }

# ---------------------------------------------------------------- strata

# strata has no separate push command. Per run, on fresh state:
#   cold:    strata build --root DIR -o type=oci,dest=OUT --metadata-file M CTX
#   push:    strata build --root DIR -t REF --push CTX         (fully cached build + push)
#   cached:  the cold command again (a new OUT)
#   nocache: the cold command with --no-cache (base present, every step run)
# and then, on another fresh --root and a re-seeded registry,
#   cold+push: strata build --root DIR -t REF --push CTX
# No --insecure-registry: strata speaks plain HTTP to loopback registries.
# Each build's metadata (phases, per-step timings) is kept in $WORK/last-build.json.
strata_up() { mkdir -p "$STATE/strata/root"; }
strata_down() {
	unmount_under "$STATE/strata"
	rm -rf "$STATE/strata"
}
strata_pull() { :; } # strata's cold build starts from an empty --root
strata_out=0
strata_build() { # strata_build WORKLOAD [FLAG...]
	local wl=$1
	shift
	strata_out=$((strata_out + 1))
	rm -f "$WORK/last-build.json"
	"$STRATA" build --root "$STATE/strata/root" -f "$WORK/ctx/$wl/strata.yaml" --metadata-file "$WORK/last-build.json" \
		-o "type=oci,dest=$STATE/strata/out-$strata_out" "$@" "$WORK/ctx/$wl"
}
strata_nocache() { strata_build "$1" --no-cache; }
strata_push() {
	"$STRATA" build --root "$STATE/strata/root" -f "$WORK/ctx/$1/strata.yaml" \
		-t "$REGISTRY/bench/strata-$1:1" --push "$WORK/ctx/$1"
}

strata_missing() { # prints why strata cannot run, or nothing
	if [[ -z $STRATA ]]; then
		echo "no strata binary: set STRATA=/path/to/strata"
	elif [[ ! -x $STRATA ]]; then
		echo "STRATA=$STRATA is not an executable file"
	elif ! "$STRATA" version >/dev/null 2>&1; then
		echo "\`$STRATA version\` failed"
	fi
}

# ---------------------------------------------------------------- timing

declare -A TIMES REASON # key "workload|tool|phase": ms values / why n/a
last_ms=0              # the last successful measure's time

# measure WORKLOAD TOOL PHASE CMD...: time CMD (output to the log), record it.
measure() {
	local wl=$1 tool=$2 phase=$3 key="$1|$2|$3" logf="$LOGDIR/$1-$2-$3.log"
	shift 3
	local t0 t1 rc=0
	printf '\n=== run %s: %s\n' "$run" "$*" >>"$logf"
	t0=$(date +%s%N)
	"$@" >>"$logf" 2>&1 || rc=$?
	t1=$(date +%s%N)
	if ((rc != 0)); then
		local last
		last=$(grep -v '^[[:space:]]*$' "$logf" | tail -n 1 | cut -c1-120 | tr '|' '/')
		REASON[$key]="exit $rc: $last"
		log "$wl/$tool/$phase run $run FAILED (exit $rc); see $logf"
		return 1
	fi
	last_ms=$(((t1 - t0) / 1000000))
	TIMES[$key]+="$last_ms "
	log "$wl/$tool/$phase run $run: $(fmt_s $(((t1 - t0) / 1000000))) s"
}

fmt_s() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }

cell() { # cell KEY: "median (min–max)" in seconds, or n/a (reason)
	local key=$1
	if [[ -n ${REASON[$key]:-} ]]; then
		echo "n/a (${REASON[$key]})"
		return
	fi
	if [[ -z ${TIMES[$key]:-} ]]; then
		echo "n/a (not run)"
		return
	fi
	tr ' ' '\n' <<<"${TIMES[$key]}" | grep . | sort -n | awk '
		{ v[NR] = $1 }
		END {
			med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			if (NR == 1) printf "%.2f", med / 1000
			else printf "%.2f (%.2f–%.2f)", med / 1000, v[1] / 1000, v[NR] / 1000
		}'
}

# med KEY: the median of KEY's times in ms, or nothing if it has none.
med() {
	[[ -z ${REASON[$1]:-} && -n ${TIMES[$1]:-} ]] || return 0
	tr ' ' '\n' <<<"${TIMES[$1]}" | grep . | sort -n | awk '
		{ v[NR] = $1 }
		END { printf "%d\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio A_MS B_MS: A/B to two decimals, or n/a.
ratio() {
	if [[ -n $1 && -n $2 && $2 -gt 0 ]]; then
		awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
	else
		echo n/a
	fi
}

# verdict RATIO LIMIT: met when RATIO ≤ LIMIT.
verdict() {
	[[ $1 == n/a ]] && { echo "n/a"; return; }
	awk -v r="$1" -v l="$2" 'BEGIN { print (r <= l) ? "**met**" : "**not met**" }'
}

# check_pushed WORKLOAD TOOL PHASE: after a push that exited 0, the tag must
# resolve in the registry (checked outside the timing); if not, PHASE is n/a.
check_pushed() {
	local repo="bench/$2-$1"
	curl -fsS -o /dev/null -I \
		-H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json' \
		-H 'Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json' \
		"http://$REGISTRY/v2/$repo/manifests/1" 2>/dev/null && return 0
	REASON["$1|$2|$3"]="exit 0 but $REGISTRY/$repo:1 is not in the registry"
	log "$1/$2/$3 run $run: $REGISTRY/$repo:1 is not in the registry"
	return 1
}

# record_strata WORKLOAD PHASE: the phases of the strata build just timed
# (PHASE cold or nocache), from its metadata, as TIMES entries in ms:
# WORKLOAD|strata|PHASE:resolve ... and PHASE:overhead, the wall time not
# spent in the steps' processes.
record_strata() {
	local wl=$1 phase=$2 names vals i
	names=(resolve stages compress output unpack process diff commit bgcompress)
	vals=$(jq -r '[.phases.resolve_ns, .phases.steps_ns, (.phases.compress_ns // 0), .phases.output_ns,
		([.steps[].timings.unpack_ns // 0] | add // 0), ([.steps[].timings.process_ns // 0] | add // 0),
		([.steps[].timings.diff_ns // 0] | add // 0), ([.steps[].timings.commit_ns // 0] | add // 0),
		([.steps[].timings.compress_ns // 0] | add // 0)] | map(. / 1e6 | floor) | @tsv' "$WORK/last-build.json") || return 0
	read -r -a vals <<<"$vals"
	for i in "${!names[@]}"; do TIMES["$wl|strata|$phase:${names[$i]}"]+="${vals[$i]} "; done
	TIMES["$wl|strata|$phase:overhead"]+="$((last_ms - vals[5])) "
}

# record_docker WORKLOAD: the time docker's steps took in the cold build
# just timed, and its overhead (the rest of the wall time).
record_docker() {
	local steps
	steps=$(docker_steps "$WORK/last-build.out")
	TIMES["$1|docker|cold:process"]+="$steps "
	TIMES["$1|docker|cold:overhead"]+="$((last_ms - steps)) "
}

# drop_page_cache: every run starts with the page cache as empty as the
# last one's (see "What is timed"), but for the tools' own binaries and the
# build contexts, read back in: no tool pays for loading its program from
# disk, and a context is as warm as a fresh checkout.
drop_page_cache() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	local bin lib
	for bin in "$DOCKER" "$DOCKERD" "$BUILDAH" /usr/sbin/runc "$STRATA" /usr/bin/igzip; do
		[[ -f $bin ]] || continue
		cat "$bin" >/dev/null
		for lib in $(ldd "$bin" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'); do
			cat "$lib" >/dev/null
		done
	done
	find "$WORK/ctx" -type f -exec cat {} + >/dev/null
}

# one_run WORKLOAD TOOL: fresh state, base pulled (docker, buildah), cold
# build, push, cached rebuild (strata: and a --no-cache build), teardown.
# A phase that failed once stays n/a: a median over fewer runs would mislead.
one_run() {
	local wl=$1 tool=$2 p
	if [[ $tool == strata ]]; then
		local why
		why=$(strata_missing)
		if [[ -n $why ]]; then
			for p in cold push coldpush cached nocache; do REASON["$wl|strata|$p"]=$why; done
			return
		fi
	fi
	drop_page_cache
	registry_reset "$wl"
	"${tool}_up"
	local cold_ms
	if ! "${tool}_pull" "$wl" >>"$LOGDIR/$wl-$tool-pull.log" 2>&1; then
		for p in cold push coldpush cached; do REASON["$wl|$tool|$p"]="pulling the base failed"; done
	elif measure "$wl" "$tool" cold "${tool}_build" "$wl"; then
		cold_ms=$last_ms
		case $tool in
		strata) record_strata "$wl" cold ;;
		docker) record_docker "$wl" ;;
		esac
		if measure "$wl" "$tool" push "${tool}_push" "$wl" && check_pushed "$wl" "$tool" push; then
			[[ $tool == strata ]] || TIMES["$wl|$tool|coldpush"]+="$((cold_ms + last_ms)) "
		elif [[ $tool != strata ]]; then
			REASON["$wl|$tool|coldpush"]="push failed"
		fi
		measure "$wl" "$tool" cached "${tool}_build" "$wl" || true
		if [[ $tool == strata ]] && measure "$wl" strata nocache strata_nocache "$wl"; then
			record_strata "$wl" nocache
		fi
	else
		for p in push coldpush cached nocache; do REASON["$wl|$tool|$p"]="cold build failed"; done
	fi
	"${tool}_down"
	if [[ $tool == strata ]]; then # build and push in one command, from nothing
		registry_reset "$wl"
		strata_up
		if measure "$wl" strata coldpush strata_push "$wl"; then
			check_pushed "$wl" strata coldpush || true
		fi
		strata_down
	fi
}

# ---------------------------------------------------------------- contention

# The machine may be shared. busy_cs: CPU time (centiseconds) the whole machine
# has spent busy since boot; own_cs: CPU time of this script and its reaped
# descendants (dockerd, containerd and the build containers are reaped by the
# time it is read). Their deltas over the run give what other processes used.
busy_cs() {
	awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { print int(($2 + $3 + $4 + $7 + $8 + $9) * 100 / hz); exit }' /proc/stat
}
# own_cs FILE: FILE holds the output of `times` (run in the main shell, not in
# $(...), whose fork starts from zero): "XmY.YYYs XmY.YYYs" for the shell, then
# for its children.
own_cs() {
	awk '{ for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } }
		END { printf "%d\n", t * 100 }' "$1"
}

# ---------------------------------------------------------------- report

versions() {
	echo "- docker (client \`$DOCKER\`): $("$DOCKER" version --format '{{.Client.Version}}' 2>/dev/null || echo '?'); dockerd: $("$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null || echo '?')"
	local bx
	if bx=$("$DOCKER" buildx version 2>/dev/null); then
		echo "- BuildKit: \`docker buildx version\`: $bx"
	else
		echo "- BuildKit: the builder built into dockerd $("$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null) (\`DOCKER_BUILDKIT=1\`; no buildx plugin installed and the binary does not report BuildKit's version; upstream Docker 20.10 vendors BuildKit v0.8; Debian package docker.io $(dpkg-query -W -f '${Version}' docker.io 2>/dev/null))"
	fi
	echo "- containerd (started by dockerd): $("$DOCKER" version --format '{{range .Server.Components}}{{if eq .Name "containerd"}}{{.Version}}{{end}}{{end}}' 2>/dev/null || echo '?')"
	echo "- buildah: $("$BUILDAH" --version)"
	echo "- runc: $(runc --version | head -n 1)"
	echo "- docker-registry: $(docker-registry --version | awk '{print $NF}')"
	echo "- umoci: $(umoci --version | awk '{print $NF}'), skopeo: $(skopeo --version | awk '{print $NF}')"
	if command -v igzip >/dev/null && [[ ${STRATA_DISABLE_IGZIP:-} != 1 ]]; then
		echo "- igzip (strata inflates base layers with it): isal $(dpkg-query -W -f '${Version}' isal 2>/dev/null || echo '?')"
	else
		echo "- igzip: not used (strata inflates base layers in-process)"
	fi
	local why
	why=$(strata_missing)
	if [[ -n $why ]]; then
		echo "- strata: n/a ($why)"
	else
		echo "- strata: \`$STRATA version\`: $("$STRATA" version 2>&1 | head -n 1)"
	fi
}

# standalone: the BuildKit standalone column (buildkitd and buildctl are not
# in Debian 12; the column stays n/a unless both are installed and a later
# version of this script runs them).
standalone() {
	if command -v buildkitd >/dev/null && command -v buildctl >/dev/null; then
		echo "n/a (not run by this script)"
	else
		echo "n/a (not installed: no Debian 12 package)"
	fi
}

# cold_builds: the cold-builds issue's table, strata's phases, docker's
# step times and the issue's targets, met or not.
cold_builds() {
	local wl na
	na=$(standalone)
	cat <<-EOF

		### Cold builds (seconds: median (min–max) of $RUNS runs)

		strata starts from an empty \`--root\` (its cold build pulls the base from the
		registry and unpacks it); docker and buildah have pulled the base into their
		stores first (not timed). "base present" is strata's \`--no-cache\` build on its
		warm root (the base unpacked, every step run) against the peers' cold build.

		| | strata | docker BuildKit | buildah bud | BuildKit standalone |
		|---|---|---|---|---|
	EOF
	for wl in $WORKLOADS; do
		echo "| $wl, cold | $(cell "$wl|strata|cold") | $(cell "$wl|docker|cold") | $(cell "$wl|buildah|cold") | $na |"
		[[ $wl == busybox ]] ||
			echo "| $wl, base present | $(cell "$wl|strata|nocache") | $(cell "$wl|docker|cold") | $(cell "$wl|buildah|cold") | $na |"
		echo "| push of the $wl result | $(cell "$wl|strata|push") | $(cell "$wl|docker|push") | $(cell "$wl|buildah|push") | $na |"
		echo "| $wl, cold build + push | $(cell "$wl|strata|coldpush") | $(cell "$wl|docker|coldpush") | $(cell "$wl|buildah|coldpush") | $na |"
	done
	cat <<-'EOF'

		### strata's phases (seconds: median (min–max))

		From each build's `--metadata-file`: resolve (manifests, configs, the
		context hashed); unpack (base layers pulled, checked and unpacked, as the
		first step waits for them); the steps' processes; diff (each upper dir
		diffed and hashed; only trimmed when no cache lookup can hit, as in both
		builds here, the diffID then learned as the layer is compressed) and
		commit (diff + storing the snapshot: the time from a step's process
		exiting to the next step starting); compression (in the
		background while later steps run, summed over the layers); the wait for
		compression after the last step; output (assembling and writing the OCI
		layout). Non-step overhead: the wall time not spent in the steps' processes.

		| workload | build | wall | resolve | unpack | processes | diff | commit | compression (background) | wait for compression | output | non-step overhead |
		|---|---|---|---|---|---|---|---|---|---|---|---|
	EOF
	local ph
	for wl in $WORKLOADS; do
		for ph in cold nocache; do
			local k="$wl|strata|$ph"
			echo "| $wl | $ph | $(cell "$k") | $(cell "$k:resolve") | $(cell "$k:unpack") | $(cell "$k:process") | $(cell "$k:diff") | $(cell "$k:commit") | $(cell "$k:bgcompress") | $(cell "$k:compress") | $(cell "$k:output") | $(cell "$k:overhead") |"
		done
	done
	cat <<-'EOF'

		docker's steps, from its `--progress=plain` output (the DONE times of its RUN,
		COPY and ADD steps), and its overhead, the rest of its cold build's wall time:

		| workload | docker cold | steps | non-step overhead |
		|---|---|---|---|
	EOF
	for wl in $WORKLOADS; do
		echo "| $wl | $(cell "$wl|docker|cold") | $(cell "$wl|docker|cold:process") | $(cell "$wl|docker|cold:overhead") |"
	done
	targets
}

# targets: the issue's targets, each as a ratio of medians and met or not.
targets() {
	local wl r best d b
	cat <<-'EOF'

		### The issue's targets, from the medians above

		| target | workload | strata / docker | met? |
		|---|---|---|---|
	EOF
	for wl in $WORKLOADS; do
		[[ $wl == busybox ]] && continue
		r=$(ratio "$(med "$wl|strata|cold")" "$(med "$wl|docker|cold")")
		echo "| cold from an empty \`--root\` ≤ 1.0× docker BuildKit with its base pulled | $wl | $r | $(verdict "$r" 1.0) |"
		r=$(ratio "$(med "$wl|strata|nocache")" "$(med "$wl|docker|cold")")
		echo "| base present (\`--no-cache\`) ≤ 0.9× docker BuildKit | $wl | $r | $(verdict "$r" 0.9) |"
		r=$(ratio "$(med "$wl|strata|cold:overhead")" "$(med "$wl|docker|cold:overhead")")
		echo "| non-step overhead ≤ docker's (strata from an empty \`--root\`) | $wl | $r | $(verdict "$r" 1.0) |"
		r=$(ratio "$(med "$wl|strata|nocache:overhead")" "$(med "$wl|docker|cold:overhead")")
		echo "| non-step overhead ≤ docker's (strata with the base present) | $wl | $r | $(verdict "$r" 1.0) |"
	done
	if [[ " $WORKLOADS " == *" busybox "* ]]; then
		r=$(ratio "$(med "busybox|strata|cold")" "$(med "busybox|docker|cold")")
		echo "| busybox cold ≤ 0.7× docker BuildKit | busybox | $r | $(verdict "$r" 0.7) |"
	fi
	for wl in $WORKLOADS; do
		d=$(med "$wl|docker|coldpush") b=$(med "$wl|buildah|coldpush")
		best=$d
		[[ -n $b && (-z $best || $b -lt $best) ]] && best=$b
		r=$(ratio "$(med "$wl|strata|coldpush")" "$best")
		echo "| cold build + push ≤ 0.7× the best peer's (strata / best peer) | $wl | $r | $(verdict "$r" 0.7) |"
	done
}

report() {
	local wl tool
	cat <<-EOF
		## Peer benchmark: strata vs docker (BuildKit) vs buildah — $(date -u +%Y-%m-%d)

		Produced by \`bench/peers.sh\` (RUNS=$RUNS, started $stamp).

		### Machine

		- $(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) memory
		- kernel $(uname -r), Debian $(cat /etc/debian_version)
		- load average at start: $load_start; at end: $load_end
		- other processes' CPU use during the timed runs: $foreign (machine busy time minus this script's and its children's, over the wall time of the runs)

		### Versions

		$(versions)

		### Results (seconds: median (min–max) of $RUNS runs)

		| workload | tool | cold build | push | cold build + push | cached rebuild |
		|---|---|---|---|---|---|
	EOF
	for wl in $WORKLOADS; do
		for tool in $TOOLS; do
			echo "| $wl | $tool | $(cell "$wl|$tool|cold") | $(cell "$wl|$tool|push") | $(cell "$wl|$tool|coldpush") | $(cell "$wl|$tool|cached") |"
		done
	done
	cold_builds
	cat <<-'EOF'

		### What is timed

		Wall-clock time of each client command, from start to exit. Before every run
		of every tool the loopback registry (Debian's `docker-registry`, distribution
		2.8, plain HTTP on 127.0.0.1:5000, filesystem storage) is wiped and holds only
		the workload's base image; the tool starts from empty state: a new dockerd
		(new `--data-root`, so no images, no build cache), a new buildah
		`--root`/`--runroot`, a new strata `--root`. docker and buildah then pull the
		base image (`docker pull`, `buildah pull`; not timed), so their cold build
		starts with it in their stores; strata's cold build pulls and unpacks it. The
		OS page cache is emptied (`echo 3 > /proc/sys/vm/drop_caches`) before each
		tool's run, before the registry is reset and the base pulled, and the tools'
		binaries and their libraries (docker, dockerd, buildah, runc, strata, igzip)
		and the build contexts are read back in: what earlier runs left there slowed
		later ones on this machine (the same strata build took 11–16% longer with 12
		GB of page cache than after a drop). buildah's blob-info cache (normally the
		host-wide `/var/lib/containers/cache`) is fresh per run too:
		buildah runs in a private mount namespace (`unshare --mount`) with a per-run
		dir bind-mounted over `/var/lib/containers`, so like dockerd it knows only
		what it pulled. Every tool's state is on one filesystem (BENCH_FS=loop, the
		default: a journaled ext4 the script makes on a loop device; or the temp
		dir's own with BENCH_FS=root).

		- **cold build**: the build command on empty state (docker, buildah: their
		  base pulled). docker and buildah leave the image in their local stores
		  (uncompressed; compression happens at push); strata writes an OCI layout
		  (compressed layers) with `-o type=oci`.
		- **no-cache** (strata): `--no-cache` on the warm state: the base is unpacked,
		  every step runs; what the peers' cold build does.
		- **push**: docker `docker push`, buildah `buildah push`; strata has no separate
		  push command, so its push is a second `strata build -t REF --push` on the warm
		  state (a fully cached build plus the push).
		- **cold build + push**: docker and buildah: cold build + push of the same run
		  (median of the per-run sums). strata: `strata build -t REF --push` timed on
		  its own fresh `--root` and freshly seeded registry, one command from nothing
		  to a pushed image.
		- **cached rebuild**: the cold-build command again, same inputs, warm state.

		The busybox context is generated by the script: 300 binary files of 16 KiB
		(AES-CTR keystream, incompressible) and 30 text files, ~5 MB. The debian
		workload's apt step downloads from the Debian mirror over the real network, so
		it also measures the mirror. Debian's dockerd 20.10 has no `RUN --network=`
		(its built-in Dockerfile frontend rejects the flag, and no `# syntax=` frontend
		image is reachable offline), so docker and buildah get the network per build:
		`--network none` for busybox and debian-offline, `--network host` for debian,
		debian-apt and node (where the other steps then also have network); strata
		sets it per step (`network: host` on the apt step only).

		### Commands
	EOF
	echo
	echo '```sh'
	echo "# \$W = a temp dir; \$S = the state filesystem; \$CTX = \$W/ctx/WORKLOAD; NET = none | host; BASE = the workload's base"
	echo "docker-registry serve \$W/registry.yml           # 127.0.0.1:5000"
	echo "truncate -s 16G \$W/fs.img && mkfs.ext4 -E lazy_itable_init=0,lazy_journal_init=0 \$W/fs.img && mount -o loop \$W/fs.img \$S   # BENCH_FS=loop"
	echo "dockerd --config-file \$W/docker/daemon.json --iptables=false --ip-masq=false --bridge=none \\"
	echo "  --data-root \$S/docker-data --exec-root \$W/docker/exec --pidfile \$W/docker/dockerd.pid -H unix://\$W/d.sock"
	echo "  # daemon.json: {\"insecure-registries\": [\"127.0.0.1:5000\"], \"features\": {\"buildkit\": true}}"
	echo "export DOCKER_HOST=unix://\$W/d.sock DOCKER_BUILDKIT=1"
	echo "/usr/bin/docker pull BASE                            # not timed"
	echo "/usr/bin/docker build --progress=plain --network NET -t 127.0.0.1:5000/bench/docker-WORKLOAD:1 -f \$CTX/Dockerfile \$CTX"
	echo "/usr/bin/docker push 127.0.0.1:5000/bench/docker-WORKLOAD:1"
	echo "# buildah runs in its own mount namespace with a fresh blob-info cache dir:"
	echo "#   unshare --mount sh -c 'mount --bind \$S/buildah/varlib /var/lib/containers && exec buildah ...'"
	echo "B='buildah --root \$S/buildah/root --runroot \$S/buildah/runroot --storage-driver overlay'"
	echo "\$B pull --tls-verify=false BASE                     # not timed"
	echo "\$B build --runtime runc --isolation oci --layers --network NET --tls-verify=false \\"
	echo "  -t 127.0.0.1:5000/bench/buildah-WORKLOAD:1 -f \$CTX/Dockerfile \$CTX"
	echo "\$B push --tls-verify=false 127.0.0.1:5000/bench/buildah-WORKLOAD:1"
	echo "strata build --root \$S/strata/root -f \$CTX/strata.yaml --metadata-file M -o type=oci,dest=\$S/strata/out-N \$CTX   # cold, cached"
	echo "strata build --root \$S/strata/root -f \$CTX/strata.yaml --metadata-file M -o type=oci,dest=\$S/strata/out-N --no-cache \$CTX   # base present"
	echo "strata build --root \$S/strata/root -f \$CTX/strata.yaml -t 127.0.0.1:5000/bench/strata-WORKLOAD:1 --push \$CTX   # push; cold+push on a fresh root"
	echo '```'
}

# ---------------------------------------------------------------- main

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "work dir $WORK; logs in $LOGDIR"
make_busybox >>"$LOGDIR/base-images.log" 2>&1 || die "making the busybox base failed; see $LOGDIR/base-images.log"
if [[ " $WORKLOADS " == *" debian"* || " $WORKLOADS " == *" node "* ]]; then make_debian; fi
make_contexts
state_fs_up

times >"$WORK/times0"
busy0=$(busy_cs) own0=$(own_cs "$WORK/times0") wall0=$(date +%s)
for wl in $WORKLOADS; do
	for ((run = 1; run <= RUNS; run++)); do
		for tool in $TOOLS; do
			# a tool whose cold build failed once is not retried on this workload
			[[ ${REASON["$wl|$tool|cold"]:-} ]] && continue
			one_run "$wl" "$tool"
		done
	done
done

stop_pid "$registry_pid"
registry_pid=""
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
times >"$WORK/times1"
busy1=$(busy_cs) own1=$(own_cs "$WORK/times1") wall1=$(date +%s)
foreign=$(awk -v b=$((busy1 - busy0)) -v o=$((own1 - own0)) -v w=$((wall1 - wall0)) -v n="$(nproc)" \
	'BEGIN { f = (b - o) / 100; if (f < 0) f = 0; printf "%.0f CPU-s in %d s, %.0f%% of %d cores", f, w, 100 * f / (w * n), n }')
log "other processes used $foreign"

# the versions section asks dockerd for its version: start one briefly
docker_up
report | tee "$OUT"
docker_down
log "report written to $OUT"
