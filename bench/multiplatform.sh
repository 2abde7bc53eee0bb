#!/usr/bin/env bash
# multiplatform.sh — time a two-platform (linux/amd64 + linux/arm64) busybox
# build, strata against buildah, on the same recipe
# (bench/workloads/multiplatform: strata.yaml and an equivalent Dockerfile),
# cold and warm, on loopback only, and print a Markdown report. The arm64 run
# steps of both tools run under qemu user emulation through binfmt_misc.
#
# Run as root on Debian 12 (amd64) with the packages and the emulation that
# `bash .ci/deps` sets up, and buildah:
#
#   apt-get install -y buildah jq curl && bash .ci/deps
#   go build -o bin/strata ./cmd/strata
#   STRATA=bin/strata bash bench/multiplatform.sh
#
# Environment:
#   STRATA      strata binary (default: bin/strata of this checkout, else `strata`)
#   RUNS        timed runs of every command (default 5); 0 times nothing
#   HOLD        1: after the setup, print the runner commands and wait until
#               $WORK/hold is removed (or the script is interrupted), so that
#               another timer can run them; then check the outputs and report
#   BENCH_CACHE where busybox-static:arm64 is kept (default /var/cache/strata-bench)
#   OUT         the report (default bench/results/multiplatform-<UTC time>.md);
#               the report also goes to stdout, progress to stderr, every
#               command's output to OUT's .logs directory
#
# What it sets up (outside any timing):
#   - the base: an OCI image index of two busybox images, linux/amd64 from the
#     host's /bin/busybox (busybox-static) and linux/arm64 from Debian's
#     busybox-static:arm64 (apt-get download, once), each one umoci layer with
#     the applets as symlinks, /etc/passwd, /etc/group, /tmp; the index is
#     written into the umoci layout and copied with `skopeo copy --all` to a
#     private docker-registry on a free loopback port, where both tools pull it
#     from (as BASE=127.0.0.1:PORT/library/busybox:multi);
#   - the context: the recipe, the Dockerfile and data/ (~4.5 MB, made here:
#     256 incompressible 16 KiB files and 20 text files);
#   - one runner script per timed command in $WORK/bin (see make_runners), and
#     the warm states, each primed by one build.
#
# What is timed (wall clock, user and sys CPU of the runner and its children,
# as bash's `time` reports them), RUNS times, the commands interleaved:
#   strata-cold    strata build on a new --root (nothing cached, base not pulled)
#   strata-warm    the same build on a --root that has built it (fully cached)
#   buildah-cold   buildah bud --layers --platform ... --manifest on a new
#                  --root/--runroot and a new blob-info cache
#   buildah-warm   the same on a store that has built it (layers cached)
#   buildah-j2-*   the same with --jobs 2, so that buildah builds the two
#                  platforms at once as strata does (by default it builds them
#                  one after the other)
#   *-amd64-cold, *-arm64-cold   one platform only, to show the emulation's share
#   buildah-push-oci   buildah manifest push --all of a built list to a new OCI
#                  layout: what buildah needs on top of bud to give what
#                  `strata build -o type=oci` writes
# Each cold runner makes its own new state dir under $WORK/state and leaves
# it there (its removal is not timed); all of it goes at exit.
#
# Nothing is left behind: the registry is stopped and $WORK removed on exit
# (also on error or Ctrl-C). buildah and skopeo run in private mount
# namespaces with a dir of this script's bind-mounted over /var/lib/containers,
# so the host's blob-info cache is neither read nor written; if that dir does
# not exist, an empty one is made as the mount point and removed at exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUNS=${RUNS:-5}
HOLD=${HOLD:-0}
BENCH_CACHE=${BENCH_CACHE:-/var/cache/strata-bench}
if [[ -z ${STRATA:-} ]]; then
	if [[ -x $here/../bin/strata ]]; then STRATA=$here/../bin/strata; else STRATA=$(command -v strata || true); fi
fi
stamp=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$here/results/multiplatform-$stamp.md}
LOGDIR=${OUT%.md}.logs
BUILDAH=/usr/bin/buildah
PLATFORMS=linux/amd64,linux/arm64
TAG=mp:1

log() { printf '[multiplatform %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (runc, overlay mounts and buildah need it)"
[[ $RUNS =~ ^[0-9]+$ ]] || die "RUNS must be a number, got '$RUNS'"
[[ $(uname -m) == x86_64 ]] || die "the base pairs the host's amd64 busybox with an arm64 one: run on amd64"
for bin in "$BUILDAH" /usr/sbin/runc /usr/bin/docker-registry /bin/busybox /usr/bin/umoci \
	/usr/bin/skopeo /usr/bin/jq /usr/bin/curl /usr/bin/openssl; do
	[[ -x $bin ]] || die "$bin missing: apt-get install -y buildah runc docker-registry busybox-static umoci skopeo jq curl openssl"
done
[[ -n $STRATA && -x $STRATA ]] || die "no strata binary: go build -o bin/strata ./cmd/strata, or set STRATA"
STRATA=$(cd "$(dirname "$STRATA")" && pwd)/$(basename "$STRATA")
if ! grep -qs '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 ||
	! grep -qs '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
	die "qemu-aarch64 is not registered with binfmt_misc (flag F): bash .ci/deps, or apt-get install -y qemu-user-static binfmt-support && update-binfmts --enable qemu-aarch64"
fi

WORK=$(mktemp -d /tmp/mp.XXXXXX)
mkdir -p "$LOGDIR" "$(dirname "$OUT")" "$WORK/state" "$WORK/bin"

# ---------------------------------------------------------------- cleanup

registry_pid=""
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

cleanup() {
	local rc=$?
	set +e
	stop_pid "$registry_pid"
	varlib_down
	unmount_under "$WORK"
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
varlib_up # buildah and skopeo see a private /var/lib/containers (lib.sh)

# ---------------------------------------------------------------- the base

# arm64_busybox: the path of busybox from busybox-static:arm64, fetched once.
arm64_busybox() {
	local bin=$BENCH_CACHE/busybox-arm64/busybox tmp
	if [[ ! -x $bin ]]; then
		dpkg --print-foreign-architectures | grep -qx arm64 ||
			die "arm64 is not a dpkg architecture here: dpkg --add-architecture arm64 && apt-get update (or bash .ci/deps)"
		tmp=$(mktemp -d "$WORK/deb.XXXXXX")
		(cd "$tmp" && apt-get download busybox-static:arm64) >>"$LOGDIR/base.log" 2>&1 ||
			die "apt-get download busybox-static:arm64 failed; see $LOGDIR/base.log"
		dpkg-deb -x "$tmp"/busybox-static_*_arm64.deb "$tmp/root"
		mkdir -p "$(dirname "$bin")"
		cp "$tmp/root/bin/busybox" "$bin.tmp"
		mv "$bin.tmp" "$bin"
	fi
	echo "$bin"
}

# make_base: $WORK/base, an OCI layout whose tag "multi" is an image index of
# a linux/amd64 and a linux/arm64 busybox image (tags "amd64" and "arm64").
make_base() {
	local oci=$WORK/base bundle=$WORK/base-bundle arch src idx sum
	umoci init --layout "$oci"
	for arch in amd64 arm64; do
		if [[ $arch == amd64 ]]; then src=/bin/busybox; else src=$ARM64_BUSYBOX; fi
		umoci new --image "$oci:$arch"
		umoci unpack --image "$oci:$arch" "$bundle" >/dev/null
		busybox_rootfs "$bundle/rootfs" "$src" # the applets of the same Debian version for both
		umoci repack --image "$oci:$arch" "$bundle"
		umoci config --image "$oci:$arch" --os linux --architecture "$arch" \
			--config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin --config.cmd sh
		rm -rf "$bundle"
	done
	umoci gc --layout "$oci"
	# the index: the two manifests, each with its platform
	idx=$(jq -c '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
		manifests: [.manifests[] | {mediaType, digest, size,
			platform: {os: "linux", architecture: .annotations["org.opencontainers.image.ref.name"]}}]}' "$oci/index.json")
	printf '%s' "$idx" >"$WORK/base-index.json"
	sum=$(sha256sum "$WORK/base-index.json" | cut -d' ' -f1)
	cp "$WORK/base-index.json" "$oci/blobs/sha256/$sum"
	jq -c --arg d "sha256:$sum" --argjson s "$(stat -c %s "$WORK/base-index.json")" \
		'.manifests += [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
			annotations: {"org.opencontainers.image.ref.name": "multi"}}]' "$oci/index.json" >"$WORK/index.json.new"
	mv "$WORK/index.json.new" "$oci/index.json"
}

# ---------------------------------------------------------------- registry

free_port() { # the first port from 5000 up that nothing listens on
	local p
	for ((p = 5000; p < 5100; p++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
	die "no free port in 127.0.0.1:5000-5099"
}


# ---------------------------------------------------------------- context

make_context() {
	CTX=$WORK/ctx
	mkdir -p "$CTX/data/bin" "$CTX/data/text"
	cp "$here/workloads/multiplatform/Dockerfile" "$here/workloads/multiplatform/strata.yaml" "$CTX/"
	head -c $((256 * 16384)) /dev/zero |
		openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f \
			-iv 00000000000000000000000000000000 |
		split -b 16384 -d -a 3 - "$CTX/data/bin/part-"
	local i
	for ((i = 0; i < 20; i++)); do
		seq -f "line %g of text file $i: the quick brown fox jumps over the lazy dog" 1 $((200 + i * 10)) \
			>"$CTX/data/text/t$i.txt"
	done
	find "$CTX" -exec touch -h -d @1700000000 {} +
}

# ---------------------------------------------------------------- runners

# runner NAME BODY: $WORK/bin/NAME, a script that runs BODY (one command,
# exec'd). The runners are what is timed; they can be timed by other tools
# too (HOLD=1).
runner() {
	printf '#!/bin/sh\nset -e\n%s\n' "$2" >"$WORK/bin/$1"
	chmod +x "$WORK/bin/$1"
}

# strata_cmd ROOT DEST PLATFORMS
strata_cmd() {
	echo "exec $STRATA build --root $1 --build-arg BASE=$BASE --platform $3 -t $TAG -o type=oci,dest=$2 $CTX"
}
# buildah_cmd STATE PLATFORMS [FLAG...]: bud on STATE/{root,runroot,varlib}
buildah_cmd() {
	local s=$1 p=$2
	shift 2
	# shellcheck disable=SC2016 # $0 and $@ are the inner shell's
	echo "mkdir -p $s/varlib
exec unshare --mount --propagation private -- sh -c 'mount --bind \"\$0\" /var/lib/containers && exec \"\$@\"' $s/varlib \\
  $BUILDAH --root $s/root --runroot $s/runroot --storage-driver overlay \\
  bud --runtime runc --isolation oci --layers --network none --tls-verify=false $* \\
  --build-arg BASE=$BASE --platform $p --manifest $TAG -f $CTX/Dockerfile $CTX"
}

# shellcheck disable=SC2016 # '$d' is the runner's: each makes its own state dir
make_runners() {
	local s=$WORK/state
	local new='d=$(mktemp -d '"$s"
	runner strata-cold "$new/strata-cold.XXXXXX)
$(strata_cmd '$d/root' '$d/out' $PLATFORMS)"
	runner strata-warm "$new/strata-warm-out.XXXXXX)
$(strata_cmd "$s/strata-warm/root" '$d/out' $PLATFORMS)"
	runner buildah-cold "$new/buildah-cold.XXXXXX)
$(buildah_cmd '$d' $PLATFORMS)"
	runner buildah-warm "$(buildah_cmd "$s/buildah-warm" $PLATFORMS)"
	runner buildah-j2-cold "$new/buildah-j2-cold.XXXXXX)
$(buildah_cmd '$d' $PLATFORMS --jobs 2)"
	runner buildah-j2-warm "$(buildah_cmd "$s/buildah-j2-warm" $PLATFORMS --jobs 2)"
	local arch
	for arch in amd64 arm64; do
		runner "strata-$arch-cold" "$new/strata-$arch-cold.XXXXXX)
$(strata_cmd '$d/root' '$d/out' "linux/$arch")"
		runner "buildah-$arch-cold" "$new/buildah-$arch-cold.XXXXXX)
$(buildah_cmd '$d' "linux/$arch")"
	done
	local w=$s/buildah-warm
	runner buildah-push-oci "$new/buildah-push-oci.XXXXXX)
exec unshare --mount --propagation private -- sh -c 'mount --bind \"\$0\" /var/lib/containers && exec \"\$@\"' $w/varlib \\
  $BUILDAH --root $w/root --runroot $w/runroot --storage-driver overlay \\
  manifest push --all $TAG oci:\$d/out:$TAG"
}

# prime: the warm states, each by one build (also a check that every tool
# builds at all; a failure here stops the script).
prime() {
	local r
	mkdir -p "$WORK/state/strata-warm"
	for r in strata-warm buildah-warm buildah-j2-warm; do
		log "priming $r"
		"$WORK/bin/$r" >>"$LOGDIR/prime-$r.log" 2>&1 || die "priming $r failed; see $LOGDIR/prime-$r.log"
	done
}

# ---------------------------------------------------------------- timing

COMMANDS="strata-cold buildah-cold buildah-j2-cold strata-warm buildah-warm buildah-j2-warm
	strata-amd64-cold strata-arm64-cold buildah-amd64-cold buildah-arm64-cold buildah-push-oci"
declare -A WALL CPU FAILED

# measure NAME: run $WORK/bin/NAME once, record its wall and CPU time (ms).
measure() {
	local name=$1 logf=$LOGDIR/$1.log tf=$WORK/time.out rc=0 real user sys
	printf '\n=== run %s\n' "$run" >>"$logf"
	local TIMEFORMAT='%3R %3U %3S'
	{ time "$WORK/bin/$name" >>"$logf" 2>&1; } 2>"$tf" || rc=$?
	if ((rc != 0)); then
		FAILED[$name]="exit $rc, see $logf"
		log "$name run $run FAILED (exit $rc); see $logf"
		return
	fi
	read -r real user sys <"$tf"
	WALL[$name]+="$(awk -v r="$real" 'BEGIN { printf "%d", r * 1000 }') "
	CPU[$name]+="$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%d", (u + s) * 1000 }') "
	log "$name run $run: $real s wall, $user s user, $sys s sys"
}

median_ms() { # median_ms "MS MS ...": the median
	tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 }
		END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

cell() { # cell "MS MS ...": "median (min–max)" in seconds
	[[ -n $1 ]] || { echo "n/a"; return; }
	tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 }
		END {
			med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			if (NR == 1) printf "%.2f", med / 1000
			else printf "%.2f (%.2f–%.2f)", med / 1000, v[1] / 1000, v[NR] / 1000
		}'
}

ratio() { # ratio A B: median wall of A / median wall of B
	[[ -n ${WALL[$1]:-} && -n ${WALL[$2]:-} ]] || { echo "n/a"; return; }
	awk -v a="$(median_ms "${WALL[$1]}")" -v b="$(median_ms "${WALL[$2]}")" 'BEGIN { printf "%.2f", a / b }'
}

# ---------------------------------------------------------------- checks

declare -A CHECK SIZE

# check_index NAME LAYOUT: the layout's TAG is an index of linux/amd64 and
# linux/arm64, and each image's /arch and /target say its platform.
check_index() {
	local name=$1 layout=$2 arch want got target cfg dir plats
	plats=$(with_varlib "$WORK/check-varlib" skopeo inspect --raw "oci:$layout:$TAG" | jq -r '[.manifests[].platform | .os + "/" + .architecture] | sort | join(",")')
	if [[ $plats != "$PLATFORMS" ]]; then
		CHECK[$name]="the index lists [$plats], not [$PLATFORMS]"
		return
	fi
	CHECK[$name]=""
	for arch in amd64 arm64; do
		dir=$(mktemp -d "$WORK/check.XXXXXX")
		with_varlib "$WORK/check-varlib" skopeo copy --quiet --override-os linux --override-arch "$arch" \
			"oci:$layout:$TAG" "oci:$dir/img:one" >>"$LOGDIR/checks.log" 2>&1
		cfg=$(with_varlib "$WORK/check-varlib" skopeo inspect --config "oci:$dir/img:one" | jq -r '.os + "/" + .architecture')
		umoci unpack --image "$dir/img:one" "$dir/bundle" >>"$LOGDIR/checks.log" 2>&1
		got=$(cat "$dir/bundle/rootfs/arch") target=$(cat "$dir/bundle/rootfs/target")
		case $arch in amd64) want=x86_64 ;; arm64) want=aarch64 ;; esac
		CHECK[$name]+="$arch: config $cfg, /arch $got, /target $target"
		if [[ $got != "$want" || $cfg != "linux/$arch" || $target != "linux/$arch" ]]; then
			CHECK[$name]+=" (WRONG: want $want)"
		fi
		[[ $arch == arm64 ]] || CHECK[$name]+="; "
		rm -rf "$dir"
	done
}

bytes() { du -sb "$1" | cut -f1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# last_state NAME: the newest state dir of runner NAME (run once, untimed, if
# it never ran).
last_state() {
	if ! compgen -G "$WORK/state/$1.*" >/dev/null; then
		"$WORK/bin/$1" >>"$LOGDIR/checks.log" 2>&1 || die "$1 failed; see $LOGDIR/checks.log"
	fi
	# shellcheck disable=SC2012 # mktemp names
	ls -td "$WORK/state/$1".* | head -n 1
}

check_outputs() {
	local d
	d=$(last_state strata-cold)
	check_index strata "$d/out"
	SIZE[strata-out]=$(bytes "$d/out") SIZE[strata-root]=$(bytes "$d/root")
	SIZE[strata-blobs]=$(find "$d/out/blobs" -type f | wc -l)
	d=$(last_state buildah-cold)
	SIZE[buildah-root]=$(bytes "$d/root")
	with_varlib "$d/varlib" "$BUILDAH" --root "$d/root" --runroot "$d/runroot" --storage-driver overlay \
		manifest push --all "$TAG" "oci:$d/oci:$TAG" >>"$LOGDIR/checks.log" 2>&1
	check_index buildah "$d/oci"
	SIZE[buildah-oci]=$(bytes "$d/oci") SIZE[buildah-blobs]=$(find "$d/oci/blobs" -type f | wc -l)
}

# ---------------------------------------------------------------- report

busy_cs() { # CPU time (centiseconds) the whole machine has spent busy since boot
	awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { print int(($2 + $3 + $4 + $7 + $8 + $9) * 100 / hz); exit }' /proc/stat
}
own_cs() { # own_cs FILE: the CPU time in the output of `times` in FILE
	awk '{ for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } }
		END { printf "%d\n", t * 100 }' "$1"
}

# step_table LOG: from strata's progress lines in LOG (every timed run of a
# two-platform runner), each step's time per platform, median over the runs:
# the whole step ("done") and its run part (the command itself; for a copy,
# the copying), in ms.
step_table() {
	echo "| step | linux/amd64: step (run) | linux/arm64: step (run) |"
	echo "|---|---|---|"
	sed -nE 's/.*\[linux\/([a-z0-9]+) ([0-9]+)\/[0-9]+\] [^ ]+:[0-9]+ ([a-z]+): done ([0-9.]+(µs|ms|s)) \((.*)\).*/\2 \3 \1 \4 \6/p' "$1" |
		awk 'function ms(v) {
				if (v ~ /µs$/) return v / 1000
				if (v ~ /ms$/) return v + 0
				return v * 1000
			}
			function median(list,    n, a, i, j, t) {
				n = split(list, a, " ")
				for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
				return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
			}
			{
				key = $1 " " $2
				steps[key] = 1
				done[key, $3] = done[key, $3] " " ms($4)
				run = ""
				for (i = 5; i <= NF; i++) if ($i == "run") run = $(i + 1)
				sub(/,$/, "", run)
				runs[key, $3] = runs[key, $3] " " ms(run)
			}
			END {
				for (k in steps) {
					line = "| " k
					for (p = 1; p <= 2; p++) {
						plat = (p == 1) ? "amd64" : "arm64"
						line = line sprintf(" | %.0f (%.0f)", median(done[k, plat]), median(runs[k, plat]))
					}
					print line " |"
				}
			}' | sort -n -k2
}

row() { # row NAME LABEL
	local why=${FAILED[$1]:-}
	if [[ -n $why ]]; then
		echo "| $2 | n/a ($why) | n/a |"
	else
		echo "| $2 | $(cell "${WALL[$1]:-}") | $(cell "${CPU[$1]:-}") |"
	fi
}

report() {
	local cpu mem
	cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
	cat <<-EOF
		## Two-platform busybox build: strata vs buildah

		Produced by \`bench/multiplatform.sh\` (RUNS=$RUNS, started $stamp).

		### Machine

		- $(nproc) cores ($cpu), $mem memory
		- kernel $(uname -r), Debian $(cat /etc/debian_version)
		- load average at start: $load_start; at end: $load_end
		- other processes' CPU use during the timed runs: $foreign

		### Versions

		- strata: \`$("$STRATA" version 2>&1 | head -n 1)\`
		- $("$BUILDAH" --version)
		- $(qemu-aarch64-static --version | head -n 1) (binfmt_misc flags: $(awk '/^flags/ { print $2 }' /proc/sys/fs/binfmt_misc/qemu-aarch64))
		- $(runc --version | head -n 1)
		- docker-registry $(dpkg-query -W -f='${Version}' docker-registry), skopeo $(skopeo --version | awk '{ print $3 }'), umoci $(dpkg-query -W -f='${Version}' umoci)

		### Results (seconds: median (min–max) of $RUNS runs; CPU = user + sys of the command and its children)

		| command | wall | CPU |
		|---|---|---|
		$(row strata-cold "strata, cold")
		$(row buildah-cold "buildah bud, cold")
		$(row buildah-j2-cold "buildah bud --jobs 2, cold")
		$(row strata-warm "strata, warm (fully cached)")
		$(row buildah-warm "buildah bud, warm (layers cached)")
		$(row buildah-j2-warm "buildah bud --jobs 2, warm")
		$(row strata-amd64-cold "strata, linux/amd64 only, cold")
		$(row strata-arm64-cold "strata, linux/arm64 only, cold")
		$(row buildah-amd64-cold "buildah bud, linux/amd64 only, cold")
		$(row buildah-arm64-cold "buildah bud, linux/arm64 only, cold")
		$(row buildah-push-oci "buildah manifest push --all to an OCI layout")

		Ratios of the medians (wall): strata/buildah cold $(ratio strata-cold buildah-cold),
		strata/buildah --jobs 2 cold $(ratio strata-cold buildah-j2-cold), strata/buildah warm
		$(ratio strata-warm buildah-warm); arm64-only/amd64-only cold: strata
		$(ratio strata-arm64-cold strata-amd64-cold), buildah $(ratio buildah-arm64-cold buildah-amd64-cold).

		### Where strata's two-platform cold build spends its time

		Each step's time per platform in ms (median over the timed runs), and in
		brackets its run part: the command itself (for the copy: the copying),
		without the unpacking of the lower layers and the commit. The two platforms
		run at once. Steps: 1 \`copy: data/\`, 2 \`uname -m > /arch\`, 3 the loop
		writing 500 files, 4 \`workdir\` (no layer, not shown), 5 \`md5sum\` of every
		file and \`tar -czf\` of data/.

		$(step_table "$LOGDIR/strata-cold.log")

		### Outputs

		- strata (last cold run): ${CHECK[strata]:-not checked}. OCI layout
		  $(mib "${SIZE[strata-out]:-0}") in ${SIZE[strata-blobs]:-?} blobs; its --root $(mib "${SIZE[strata-root]:-0}").
		- buildah (last cold run, its list pushed with \`manifest push --all\` to an OCI
		  layout): ${CHECK[buildah]:-not checked}. OCI layout $(mib "${SIZE[buildah-oci]:-0}") in
		  ${SIZE[buildah-blobs]:-?} blobs; its --root $(mib "${SIZE[buildah-root]:-0}").

		### Commands

		\`\`\`sh
		# \$W = a temp dir; \$CTX = \$W/ctx; BASE = 127.0.0.1:PORT/library/busybox:multi
	EOF
	local r
	for r in strata-cold strata-warm buildah-cold buildah-j2-cold buildah-push-oci; do
		echo "# $r"
		sed -e '1,2d' -e "s|$WORK|\$W|g" -e "s|$REGISTRY|127.0.0.1:PORT|g" -e "s|\$W/ctx|\$CTX|g" \
			-e "s|$STRATA|strata|g" -e "s|$BUILDAH|buildah|g" "$WORK/bin/$r"
	done
	echo '```'
}

# ---------------------------------------------------------------- main

log "work dir $WORK; logs in $LOGDIR; strata $STRATA"
ARM64_BUSYBOX=$(arm64_busybox)
make_base >>"$LOGDIR/base.log" 2>&1 || die "making the base failed; see $LOGDIR/base.log"
REGISTRY=127.0.0.1:$(free_port)
registry_up
BASE=$REGISTRY/library/busybox:multi
with_varlib "$WORK/seed-varlib" skopeo copy --all --quiet --dest-tls-verify=false "oci:$WORK/base:multi" "docker://$BASE" \
	>>"$LOGDIR/base.log" 2>&1 || die "pushing the base failed; see $LOGDIR/base.log"
log "base index pushed to $BASE"
make_context
make_runners
prime

if [[ $HOLD == 1 ]]; then
	touch "$WORK/hold"
	log "runners ready in $WORK/bin: $(cd "$WORK/bin" && echo *)"
	log "remove $WORK/hold to go on (to the timed runs, the checks and the report)"
	while [[ -e $WORK/hold ]]; do sleep 1; done
fi

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
times >"$WORK/times0"
busy0=$(busy_cs) own0=$(own_cs "$WORK/times0") wall0=$(date +%s)
for ((run = 1; run <= RUNS; run++)); do
	for name in $COMMANDS; do measure "$name"; done
done
times >"$WORK/times1"
busy1=$(busy_cs) own1=$(own_cs "$WORK/times1") wall1=$(date +%s)
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
foreign=$(awk -v b=$((busy1 - busy0)) -v o=$((own1 - own0)) -v w=$((wall1 - wall0)) -v n="$(nproc)" \
	'BEGIN { f = (b - o) / 100; if (f < 0) f = 0; if (w < 1) w = 1
		printf "%.0f CPU-s in %d s, %.0f%% of %d cores", f, w, 100 * f / (w * n), n }')

log "checking the outputs"
check_outputs
report | tee "$OUT"
log "report written to $OUT"
