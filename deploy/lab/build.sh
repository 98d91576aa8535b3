#!/usr/bin/env bash
# build.sh builds the callwarden lab images (Asterisk 22, Redis 7) without any image
# registry: it debootstraps a Debian root filesystem from the Debian archive, replays the
# image's Dockerfile on it (COPY and RUN in a chroot), and `docker import`s the result
# with the Dockerfile's ENV/EXPOSE/CMD/LABEL. A Docker that can pull builds the very same
# images with `docker build -t <tag> deploy/lab/<image>`.
#
# Usage: deploy/lab/build.sh [--force] [--refresh] [asterisk|redis ...]
#   --force    rebuild the images even if their inputs did not change
#   --refresh  also re-run debootstrap (picks up newer Debian packages)
#
# Caching: every image carries the label org.callwarden.lab.inputs=<sha256 of its build
# inputs> (this script, the image directory, the suite, mirror and package list); when
# the local image already has that label the build is skipped. The debootstrap output is
# cached as a tarball under deploy/lab/.build/ keyed by suite, mirror and package list,
# so a configuration-only change does not download anything.
#
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian),
# CALLWARDEN_LAB_BUILD_DIR (default deploy/lab/.build). Needs root (debootstrap, chroot)
# and installs debootstrap with apt-get when it is missing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
BUILD_DIR=${CALLWARDEN_LAB_BUILD_DIR:-$HERE/.build}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
VARIANT=minbase
LABEL_KEY=org.callwarden.lab.inputs
# The only RUN line build.sh does not replay: it is replaced by debootstrap --include.
APT_RUN="apt-get update && grep -v '^#' /tmp/packages.txt | DEBIAN_FRONTEND=noninteractive xargs apt-get install -y --no-install-recommends && apt-get clean && rm -rf /var/lib/apt/lists/*"

declare -A TAGS=(
	[asterisk]=callwarden-lab/asterisk:22
	[redis]=callwarden-lab/redis:7
)
ALL_IMAGES=(asterisk redis)

FORCE=0
REFRESH=0
IMAGES=()

log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[lab] error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '8,11p' "$SELF" | sed 's/^# \{0,1\}//'; }

while (($#)); do
	case $1 in
	--force) FORCE=1 ;;
	--refresh) REFRESH=1 FORCE=1 ;;
	-h | --help) usage; exit 0 ;;
	asterisk | redis) IMAGES+=("$1") ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
	shift
done
((${#IMAGES[@]})) || IMAGES=("${ALL_IMAGES[@]}")

# --- prerequisites -------------------------------------------------------------------

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap and chroot need it); try: sudo make lab"
command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "Docker engine unreachable (docker info failed)"
if ! command -v debootstrap >/dev/null; then
	log "debootstrap missing: installing it with apt-get"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
for tool in sha256sum tar chroot flock; do
	command -v "$tool" >/dev/null || die "$tool not found"
done

mkdir -p "$BUILD_DIR"
exec 9>"$BUILD_DIR/lock"
flock -n 9 || { log "another build.sh holds $BUILD_DIR/lock; waiting"; flock 9; }

STAGE=""
TMP_ROOT=""
cleanup() {
	local d
	for d in "$TMP_ROOT" "$STAGE"; do
		[[ -n $d && -d $d ]] || continue
		# debootstrap mounts proc/sys in the target; never delete through a live mount.
		grep -o " $d/[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
		rm -rf --one-file-system "$d"
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Dockerfile reader -----------------------------------------------------------------

# read_dockerfile DIR fills SUITE, OPS (COPY/RUN to replay, in order) and CHANGES
# (instructions for docker import --change) from DIR/Dockerfile.
read_dockerfile() {
	local dir=$1 line instr rest saw_apt=0
	SUITE="" OPS=() CHANGES=()
	while IFS= read -r line; do
		[[ $line =~ ^[[:space:]]*(#|$) ]] && continue
		instr=${line%%[[:space:]]*}
		rest=${line#"$instr"}
		rest=${rest#"${rest%%[![:space:]]*}"}
		case ${instr^^} in
		FROM)
			[[ $rest =~ ^debian:([a-z]+)(-slim)?$ ]] || die "$dir/Dockerfile: FROM must be debian:<suite>, got '$rest'"
			SUITE=${BASH_REMATCH[1]}
			;;
		COPY) OPS+=("COPY $rest") ;;
		RUN)
			if [[ $rest == "$APT_RUN" ]]; then
				saw_apt=1
			elif [[ $rest == *apt-get* ]]; then
				die "$dir/Dockerfile: only this apt-get RUN line is supported: $APT_RUN"
			else
				OPS+=("RUN $rest")
			fi
			;;
		ENV | EXPOSE | CMD | ENTRYPOINT | LABEL | WORKDIR | USER | VOLUME | STOPSIGNAL) CHANGES+=("$line") ;;
		*) die "$dir/Dockerfile: instruction $instr is not supported by build.sh" ;;
		esac
	done < <(sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*/ /; ta' "$dir/Dockerfile")
	[[ -n $SUITE ]] || die "$dir/Dockerfile: no FROM line"
	((saw_apt)) || die "$dir/Dockerfile: missing the apt-get RUN line build.sh replaces: $APT_RUN"
}

# packages DIR prints the package list of DIR/packages.txt, comma separated.
packages() {
	grep -v '^[[:space:]]*#' "$1/packages.txt" | tr -s ' \t\n' '\n' | sed '/^$/d' | paste -sd, -
}

# inputs_hash prints the sha256 of the given words followed by every file under DIR.
inputs_hash() {
	local dir=$1; shift
	{
		printf '%s\n' "$@"
		(cd "$dir" && find . -type f ! -name '*.swp' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
	} | sha256sum | cut -d' ' -f1
}

# --- stages ----------------------------------------------------------------------------

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
		sed -u "s/^/[lab]   $name | /"; then
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

# replay NAME DIR applies the Dockerfile's COPY and RUN instructions to $STAGE.
replay() {
	local name=$1 dir=$2 op args src dst
	for op in "${OPS[@]}"; do
		case $op in
		COPY\ *)
			read -r -a args <<<"${op#COPY }"
			((${#args[@]} == 2)) || die "$dir/Dockerfile: COPY takes exactly one source and one destination: $op"
			src=$dir/${args[0]} dst=$STAGE${args[1]}
			[[ -e $src ]] || die "$dir/Dockerfile: COPY source ${args[0]} not found"
			log "$name:   $op"
			if [[ -d $src ]]; then
				mkdir -p "$dst"
				cp -R --preserve=mode "$src/." "$dst/"
			elif [[ ${args[1]} == */ ]]; then
				mkdir -p "$dst"
				cp --preserve=mode "$src" "$dst"
			else
				mkdir -p "$(dirname "$dst")"
				cp --preserve=mode "$src" "$dst"
			fi
			;;
		RUN\ *)
			log "$name:   $op"
			env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
				chroot "$STAGE" /bin/sh -c "${op#RUN }"
			;;
		esac
	done
}

build_image() {
	local name=$1 dir=$HERE/$1 tag=${TAGS[$1]} pkgs key current started change old_id
	local -a import_args
	started=$SECONDS
	read_dockerfile "$dir"
	pkgs=$(packages "$dir")
	key=$(inputs_hash "$dir" "$(sha256sum <"$SELF")" "$SUITE" "$MIRROR" "$VARIANT" "$pkgs")
	current=$(docker image inspect --format "{{ index .Config.Labels \"$LABEL_KEY\" }}" "$tag" 2>/dev/null || true)
	if [[ $current == "$key" && $FORCE == 0 ]]; then
		log "$name image $tag up to date (inputs sha256 ${key:0:12}), skipping"
		return
	fi
	if [[ -n $current ]]; then
		log "$name: $tag exists with other inputs (${current:0:12}), rebuilding as ${key:0:12}"
	else
		log "$name: building $tag (inputs sha256 ${key:0:12})"
	fi

	ensure_rootfs "$name" "$SUITE" "$pkgs"

	STAGE="$BUILD_DIR/stage-$name"
	cleanup
	mkdir -p "$STAGE"
	log "$name: unpacking rootfs and replaying $dir/Dockerfile"
	tar -C "$STAGE" --numeric-owner -xpf "$ROOTFS_TAR"
	replay "$name" "$dir"

	import_args=(--message "callwarden lab $name, offline build by deploy/lab/build.sh" --change "LABEL $LABEL_KEY=$key")
	for change in "${CHANGES[@]}"; do
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
	log "$name: built $tag ($(docker image inspect --format '{{ .Size }}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'), $((SECONDS - started))s)"
}

total=$SECONDS
for image in "${IMAGES[@]}"; do
	build_image "$image"
done
log "done in $((SECONDS - total))s: $(for i in "${IMAGES[@]}"; do printf '%s ' "${TAGS[$i]}"; done)"
