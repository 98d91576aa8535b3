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
# The pieces it shares with deploy/image/build.sh (the debootstrap cache, the lock, the
# import) are in lib.sh, next to it.
#
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian),
# CALLWARDEN_LAB_BUILD_DIR (default deploy/lab/.build). Needs root (debootstrap, chroot)
# and installs debootstrap with apt-get when it is missing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
LOG_TAG=lab
# shellcheck source=deploy/lab/lib.sh
source "$HERE/lib.sh"
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

offline_prerequisites

# --- Dockerfile reader -----------------------------------------------------------------

# read_dockerfile DIR fills SUITE, OPS (COPY/RUN to replay, in order) and CHANGES
# (instructions for docker import --change) from DIR/Dockerfile.
read_dockerfile() {
	local dir=$1 line instr rest saw_apt=0 INSTR REST
	SUITE="" OPS=() CHANGES=()
	while IFS= read -r line; do
		split_instruction "$line"
		instr=$INSTR rest=$REST
		case $instr in
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
	done < <(dockerfile_lines "$dir/Dockerfile")
	[[ -n $SUITE ]] || die "$dir/Dockerfile: no FROM line"
	((saw_apt)) || die "$dir/Dockerfile: missing the apt-get RUN line build.sh replaces: $APT_RUN"
}

# packages DIR prints the package list of DIR/packages.txt, comma separated.
packages() {
	grep -v '^[[:space:]]*#' "$1/packages.txt" | tr -s ' \t\n' '\n' | sed '/^$/d' | paste -sd, -
}

# --- stages ----------------------------------------------------------------------------

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
	local name=$1 dir=$HERE/$1 tag=${TAGS[$1]} pkgs key current started
	started=$SECONDS
	read_dockerfile "$dir"
	pkgs=$(packages "$dir")
	key=$(inputs_hash "$dir" "$(cat "$SELF" "$HERE/lib.sh" | sha256sum)" "$SUITE" "$MIRROR" "$VARIANT" "$pkgs")
	current=$(image_key "$tag" "$LABEL_KEY")
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

	import_image "$name" "$tag" "callwarden lab $name, offline build by deploy/lab/build.sh" \
		"LABEL $LABEL_KEY=$key" "${CHANGES[@]}"
	log "$name: built $tag ($(image_size "$tag"), $((SECONDS - started))s)"
}

total=$SECONDS
for image in "${IMAGES[@]}"; do
	build_image "$image"
done
log "done in $((SECONDS - total))s: $(for i in "${IMAGES[@]}"; do printf '%s ' "${TAGS[$i]}"; done)"
