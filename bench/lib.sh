# shellcheck shell=bash
# lib.sh — what the scripts in bench/ share: stopping processes, unmounting,
# buildah's and skopeo's private /var/lib/containers, the loopback registry,
# a dockerd of their own, the busybox base and the cleanup at exit. Sourced
# by them once they have defined log and die, WORK and LOGDIR; registry_up,
# seed and dockerd_up use REGISTRY, dockerd_up DOCKER and DOCKER_HOST, and
# cleanup_and_keep_logs OUT.

stop_pid() { # stop_pid PID: TERM, wait up to 30 s, then KILL
	local pid=$1 i
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	log "pid $pid ignored TERM for 30 s; killing it"
	kill -KILL "$pid" 2>/dev/null || true
}

unmount_under() { # unmount everything mounted at or below $1, deepest first
	local m
	findmnt -rn -o TARGET | awk -v p="$1" '$0 == p || index($0, p "/") == 1' | sort -r |
		while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
}

# buildah and skopeo (containers/image) keep a blob-info cache, which remembers
# where a registry has which blob, in /var/lib/containers/cache whatever --root
# says. So that no run sees what another run (or anything else on the host)
# recorded, and the host's dir is never written, each of them runs in a private
# mount namespace with a dir of this run's state bind-mounted over
# /var/lib/containers. If that dir does not exist, varlib_up makes an empty one
# as the mount point and varlib_down removes it.
VARLIB=/var/lib/containers
varlib_made=false
varlib_up() {
	if [[ ! -e $VARLIB ]]; then
		mkdir -m 0700 "$VARLIB"
		varlib_made=true
	fi
}
varlib_down() {
	if $varlib_made; then rmdir "$VARLIB"; fi # fails, rightly, if anything wrote into it
}
with_varlib() { # with_varlib DIR CMD...: CMD sees DIR as /var/lib/containers
	local dir=$1
	shift
	mkdir -p "$dir"
	# shellcheck disable=SC2016 # $0 and $@ are the inner shell's
	unshare --mount --propagation private -- \
		sh -c 'mount --bind "$0" /var/lib/containers && exec "$@"' "$dir" "$@"
}

# registry_up: a distribution registry on REGISTRY (plain HTTP), its storage
# in $WORK/registry; registry_pid is its pid.
registry_up() {
	mkdir -p "$WORK/registry"
	cat >"$WORK/registry.yml" <<-EOF
		version: 0.1
		log: {level: warn, accesslog: {disabled: true}}
		storage:
		  filesystem: {rootdirectory: $WORK/registry}
		  delete: {enabled: true}
		http:
		  addr: $REGISTRY
		  secret: strata-bench-not-secret
	EOF
	/usr/bin/docker-registry serve "$WORK/registry.yml" >>"$LOGDIR/registry.log" 2>&1 &
	registry_pid=$!
	wait_http "http://$REGISTRY/v2/" "$registry_pid" ||
		die "docker-registry did not start on $REGISTRY; see $LOGDIR/registry.log"
}

# wait_http URL PID: 0 once URL answers; 1 if the server PID has exited, or
# after 10 s.
wait_http() {
	local i
	for ((i = 0; i < 100; i++)); do
		curl -fsS "$1" >/dev/null 2>&1 && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# dockerd_up DIR: a dockerd of its own (BuildKit, no networks of its own,
# REGISTRY reachable without TLS) with its state in DIR, listening on
# DOCKER_HOST; dockerd_pid is its pid.
dockerd_up() {
	local dir=$1 i
	mkdir -p "$dir/data" "$dir/exec"
	cat >"$dir/daemon.json" <<-EOF
		{"insecure-registries": ["$REGISTRY"], "features": {"buildkit": true}}
	EOF
	/usr/sbin/dockerd --config-file "$dir/daemon.json" --iptables=false --ip-masq=false --bridge=none \
		--data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/pid" \
		-H "$DOCKER_HOST" >>"$LOGDIR/dockerd.log" 2>&1 &
	dockerd_pid=$!
	for ((i = 0; i < 300; i++)); do
		"$DOCKER" version >/dev/null 2>&1 && return 0
		kill -0 "$dockerd_pid" 2>/dev/null || break
		sleep 0.1
	done
	die "dockerd did not start; see $LOGDIR/dockerd.log"
}

# cleanup_and_keep_logs: the EXIT trap of a script whose servers are
# dockerd_pid and registry_pid: they are stopped, everything under WORK
# unmounted and removed; on failure the logs are kept beside OUT.
cleanup_and_keep_logs() {
	local rc=$?
	set +e
	stop_pid "$dockerd_pid"
	stop_pid "$registry_pid"
	varlib_down
	unmount_under "$WORK"
	if ((rc != 0)); then
		mkdir -p "${OUT%.md}.logs" && cp -r "$LOGDIR/." "${OUT%.md}.logs/"
		log "logs kept in ${OUT%.md}.logs"
	fi
	rm -rf "$WORK"
	exit "$rc"
}

seed() { # seed OCI_DIR:TAG REPO:TAG: push an image of a layout to REGISTRY
	with_varlib "$WORK/skopeo-varlib" skopeo copy --quiet --dest-tls-verify=false "oci:$1" "docker://$REGISTRY/$2" \
		>>"$LOGDIR/seed.log" 2>&1 || die "pushing base $2 failed; see $LOGDIR/seed.log"
}

# busybox_rootfs ROOTFS BUSYBOX: ROOTFS gets the binary BUSYBOX as
# /bin/busybox, the applets of this host's busybox as symlinks to it,
# /etc/passwd and /etc/group (root, nobody), /tmp (1777) and /root (0700).
busybox_rootfs() {
	local r=$1 a
	mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,var,home}
	chmod 1777 "$r/tmp"
	chmod 0700 "$r/root"
	cp "$2" "$r/bin/busybox"
	for a in $(/bin/busybox --list-full); do
		[[ $a == bin/busybox ]] || ln -sf /bin/busybox "$r/$a"
	done
	printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$r/etc/passwd"
	printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$r/etc/group"
}

# make_busybox: $WORK/busybox-oci, an OCI layout whose tag "latest" is a
# busybox image of /bin/busybox from busybox-static (see busybox_rootfs).
# Built with umoci each time (0.1 s); the same bytes every time.
make_busybox() {
	local oci=$WORK/busybox-oci bundle=$WORK/busybox-bundle
	umoci init --layout "$oci"
	umoci new --image "$oci:latest"
	umoci unpack --image "$oci:latest" "$bundle" >/dev/null
	busybox_rootfs "$bundle/rootfs" /bin/busybox
	umoci repack --image "$oci:latest" "$bundle"
	umoci config --image "$oci:latest" --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin --config.cmd sh
	rm -rf "$bundle"
}

# debian_mirror: DEBIAN_MIRROR, or the bookworm mirror apt uses here.
debian_mirror() {
	if [[ -n ${DEBIAN_MIRROR:-} ]]; then
		echo "$DEBIAN_MIRROR"
		return
	fi
	local m
	m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		sed 's/\[[^]]*\]//' | awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }')
	if [[ -z $m ]]; then # deb822: a stanza whose Suites include bookworm
		m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
			/^[[:space:]]*$/ { if (suite && uri) { print uri; exit } suite = 0; uri = ""; next }
			tolower($1) == "uris:" { uri = $2 }
			tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite = 1 }
			END { if (suite && uri) print uri }' | head -n 1)
	fi
	echo "${m:-http://deb.debian.org/debian}"
}

# make_debian: $BENCH_CACHE/debian-bookworm-oci, an OCI layout whose tag
# "bookworm" is debootstrap --variant=minbase, made once: the rootfs tarball
# and the layout made from it are cached in BENCH_CACHE.
make_debian() {
	local tarball=$BENCH_CACHE/debian-bookworm-minbase.tar oci=$BENCH_CACHE/debian-bookworm-oci
	mkdir -p "$BENCH_CACHE"
	if [[ ! -s $tarball ]]; then
		local mirror rootfs=$WORK/debootstrap
		mirror=$(debian_mirror)
		log "debootstrap --variant=minbase bookworm from $mirror (once; cached in $tarball)"
		debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >>"$LOGDIR/debootstrap.log" 2>&1 ||
			die "debootstrap failed; see $LOGDIR/debootstrap.log"
		# what a container image should not carry: package lists and downloaded
		# debs, device nodes, the host's resolver and name
		find "$rootfs/var/lib/apt/lists" -maxdepth 1 -type f -delete
		find "$rootfs/var/cache/apt" -name '*.deb' -delete
		rm -f "$rootfs"/var/cache/apt/*.bin "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
		tar --numeric-owner --xattrs --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
			-C "$rootfs" -cf "$tarball.tmp" .
		mv "$tarball.tmp" "$tarball"
		unmount_under "$rootfs"
		rm -rf "$rootfs" "$oci"
	fi
	if [[ ! -f $oci/index.json || $tarball -nt $oci/index.json ]]; then
		log "making the debian OCI layout from $tarball"
		rm -rf "$oci" "$oci.tmp"
		umoci init --layout "$oci.tmp"
		umoci new --image "$oci.tmp:bookworm"
		umoci raw add-layer --image "$oci.tmp:bookworm" \
			--history.created_by "debootstrap --variant=minbase bookworm" "$tarball"
		umoci config --image "$oci.tmp:bookworm" \
			--config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --config.cmd bash
		mv "$oci.tmp" "$oci"
	fi
}

# now: seconds since the epoch, to the nanosecond
now() { date +%s.%N; }

# stats FILE: "median (min–max)" of the seconds in FILE
stats() {
	sort -n "$1" | awk '{ v[NR] = $1 } END {
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%.2f s (%.2f–%.2f)", m, v[1], v[NR] }'
}

drop_caches() { sync && echo 3 >/proc/sys/vm/drop_caches; }
