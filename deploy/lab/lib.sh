# lib.sh holds what the offline image builds share: deploy/lab/build.sh (the lab images)
# and deploy/image/build.sh (callwarden's own image) source it. It defines functions and
# reads no arguments; the sourcing script sets LOG_TAG (the log prefix), BUILD_DIR,
# MIRROR, VARIANT and REFRESH first, then calls offline_prerequisites.
#
# What it provides: log/die, the prerequisites and the build lock, the cleanup of a
# half-built root on exit, inputs_hash (the cache key images are labelled with),
# ensure_rootfs (a debootstrap root cached as a tarball) and import_image (docker import
# of a staged root, replacing the previous build of the tag).

log() { printf '[%s %s] %s\n' "$LOG_TAG" "$(date +%H:%M:%S)" "$*"; }
die() { printf '[%s] error: %s\n' "$LOG_TAG" "$*" >&2; exit 1; }

# offline_prerequisites checks root, Docker, debootstrap (installed with apt-get when
# missing) and the tools the build uses, then takes $BUILD_DIR/lock so that two builds
# never share the cache at once, and arms the cleanup of STAGE and TMP_ROOT on exit.
offline_prerequisites() {
	[[ $(id -u) == 0 ]] || die "must run as root (debootstrap and chroot need it); try: sudo make lab"
	command -v docker >/dev/null || die "docker CLI not found"
	docker info >/dev/null 2>&1 || die "Docker engine unreachable (docker info failed)"
	if ! command -v debootstrap >/dev/null; then
		log "debootstrap missing: installing it with apt-get"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
	fi
	local tool
	for tool in sha256sum tar chroot flock; do
		command -v "$tool" >/dev/null || die "$tool not found"
	done

	mkdir -p "$BUILD_DIR"
	exec 9>"$BUILD_DIR/lock"
	flock -n 9 || { log "another build holds $BUILD_DIR/lock; waiting"; flock 9; }

	STAGE=""
	TMP_ROOT=""
	trap cleanup EXIT
	trap 'exit 130' INT TERM
}

cleanup() {
	local d
	for d in "$TMP_ROOT" "$STAGE"; do
		[[ -n $d && -d $d ]] || continue
		# debootstrap mounts proc/sys in the target; never delete through a live mount.
		grep -o " $d/[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
		rm -rf --one-file-system "$d"
	done
}

# dockerfile_lines FILE prints FILE's instructions, one a line: continued lines (ending
# in a backslash) joined into one, comments and blank lines left out.
dockerfile_lines() {
	sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*/ /; ta' "$1" | grep -Ev '^[[:space:]]*(#|$)' || true
}

# split_instruction LINE sets INSTR to LINE's instruction, upper case, and REST to what
# follows it.
split_instruction() {
	INSTR=${1%%[[:space:]]*}
	REST=${1#"$INSTR"}
	REST=${REST#"${REST%%[![:space:]]*}"}
	INSTR=${INSTR^^}
}

# inputs_hash prints the sha256 of the given words followed by every file under DIR.
inputs_hash() {
	local dir=$1; shift
	{
		printf '%s\n' "$@"
		(cd "$dir" && find . -type f ! -name '*.swp' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
	} | sha256sum | cut -d' ' -f1
}

# ensure_rootfs NAME SUITE PKGS sets ROOTFS_TAR to a cached debootstrap tarball.
ensure_rootfs() {
	local name=$1 suite=$2 pkgs=$3 key started
	key=$(printf '%s\n' "$suite" "$MIRROR" "$VARIANT" "$pkgs" | sha256sum | cut -c1-16)
	ROOTFS_TAR="$BUILD_DIR/rootfs-$name-$suite-$key.tar"
	if [[ -f $ROOTFS_TAR && $REFRESH == 0 ]]; then
		log "$name: reusing cached debootstrap rootfs $(basename "$ROOTFS_TAR") ($(du -h "$ROOTFS_TAR" | cut -f1))"
		return
	fi
	started=$SECONDS
	TMP_ROOT="$BUILD_DIR/tmp-rootfs-$name"
	cleanup
	log "$name: debootstrap --variant=$VARIANT $suite from $MIRROR with: $pkgs (takes a minute or two)"
	log "$name: full debootstrap log in $BUILD_DIR/debootstrap-$name.log"
	if ! debootstrap --variant="$VARIANT" --include="$pkgs" "$suite" "$TMP_ROOT" "$MIRROR" 2>&1 |
		tee "$BUILD_DIR/debootstrap-$name.log" |
		grep --line-buffered -E '^(E:|W:|I: (Retrieving Release|Resolving|Checking component|Installing core|Unpacking the base|Configuring the base|Base system))' |
		sed -u "s/^/[$LOG_TAG]   $name | /"; then
		tail -n 30 "$BUILD_DIR/debootstrap-$name.log" >&2
		die "$name: debootstrap failed (see $BUILD_DIR/debootstrap-$name.log)"
	fi
	grep -o " $TMP_ROOT/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l || true
	rm -rf "$TMP_ROOT"/var/cache/apt/archives/*.deb "$TMP_ROOT"/var/lib/apt/lists/*
	rm -f "$BUILD_DIR"/rootfs-"$name"-*.tar
	tar -C "$TMP_ROOT" --numeric-owner --one-file-system \
		--exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf "$ROOTFS_TAR.partial" .
	mv "$ROOTFS_TAR.partial" "$ROOTFS_TAR"
	rm -rf --one-file-system "$TMP_ROOT"
	TMP_ROOT=""
	log "$name: rootfs cached as $(basename "$ROOTFS_TAR") ($(du -h "$ROOTFS_TAR" | cut -f1), $((SECONDS - started))s)"
}

# image_key TAG LABEL prints the inputs hash the local image TAG is labelled with under
# LABEL, empty when there is no such image.
image_key() {
	docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

# import_image NAME TAG MESSAGE CHANGE... imports $STAGE as TAG (docker import --change
# for each CHANGE), removes the previous build of TAG unless a container uses it, then
# removes $STAGE.
import_image() {
	local name=$1 tag=$2 message=$3 change old_id
	shift 3
	local -a import_args=(--message "$message")
	for change in "$@"; do
		import_args+=(--change "$change")
	done
	log "$name: docker import as $tag"
	old_id=$(docker image inspect --format '{{ .Id }}' "$tag" 2>/dev/null || true)
	tar -C "$STAGE" --numeric-owner -c . | docker import "${import_args[@]}" - "$tag" >/dev/null
	# The previous build of this tag is now dangling; remove it unless a container uses it.
	if [[ -n $old_id && $old_id != "$(docker image inspect --format '{{ .Id }}' "$tag")" ]]; then
		docker rmi "$old_id" >/dev/null 2>&1 || log "$name: kept previous image ${old_id:7:12} (still in use)"
	fi
	rm -rf --one-file-system "$STAGE"
	STAGE=""
}

# image_size TAG prints the image's size in MB.
image_size() {
	docker image inspect --format '{{ .Size }}' "$1" | awk '{printf "%.0f MB", $1/1e6}'
}
