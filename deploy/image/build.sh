#!/usr/bin/env bash
# build.sh builds callwarden's own container image, callwarden:<version>, without any
# image registry (`make image`; `make lab` runs it too, for the integration suite).
#
# Usage: deploy/image/build.sh [--force] [--refresh] [--print-tag]
#   --force      rebuild the image even if its inputs did not change
#   --refresh    also re-run debootstrap (picks up a newer Debian CA bundle)
#   --print-tag  print the tag this checkout builds, and exit
#
# The image is a distroless-like root, nothing but:
#   /usr/bin/callwarden                  static (CGO_ENABLED=0), built here with the host's Go
#   /etc/passwd, /etc/group              root, nobody, nonroot (65532), as distroless's
#   /etc/ssl/certs/ca-certificates.crt   Debian bookworm's ca-certificates, from a
#                                        debootstrap root cached by deploy/lab/lib.sh
#   /etc/callwarden/, /home/nonroot/, /tmp/
# and is `docker import`ed with the metadata of Dockerfile's last stage (USER 65532:65532,
# ENTRYPOINT /usr/bin/callwarden, CMD serve --config /etc/callwarden/callwarden.yaml,
# EXPOSE 8080), the Dockerfile registry users build. There is no shell in it, so no
# HEALTHCHECK: probe GET /readyz.
#
# Version: $VERSION, else `git describe --tags --always --dirty`, else "dev"; it is the
# tag, the binary's `callwarden version` and a label. Caching: the image carries the label
# org.callwarden.image.inputs=<sha256 of its inputs> (the module's own Go files the
# binary is built from, go.mod, go.sum, the Go version, the version, this script,
# lib.sh, this directory, the CA bundle's debootstrap key); a build whose inputs did not
# change is skipped. The debootstrap root is cached with the lab's, in
# $CALLWARDEN_LAB_BUILD_DIR (default deploy/lab/.build), under the same lock.
#
# Environment: VERSION, GO (default go), DEBIAN_MIRROR, CALLWARDEN_LAB_BUILD_DIR. Needs
# root (debootstrap), Docker and Go.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
ROOT=$(cd "$HERE/../.." && pwd)
LAB=$ROOT/deploy/lab
LOG_TAG=image
# shellcheck source=deploy/lab/lib.sh
source "$LAB/lib.sh"
BUILD_DIR=${CALLWARDEN_LAB_BUILD_DIR:-$LAB/.build}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
VARIANT=minbase
GO=${GO:-go}
SUITE=bookworm
PKGS=ca-certificates
LABEL_KEY=org.callwarden.image.inputs
MODULE=github.com/callwarden/callwarden
# The user of distroless's :nonroot images, which the Dockerfile's last stage runs as.
UID_NONROOT=65532

FORCE=0
REFRESH=0
PRINT_TAG=0

usage() { sed -n '5,8p' "$SELF" | sed 's/^# \{0,1\}//'; }

while (($#)); do
	case $1 in
	--force) FORCE=1 ;;
	--refresh) REFRESH=1 FORCE=1 ;;
	--print-tag) PRINT_TAG=1 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
	shift
done

version() {
	if [[ -n ${VERSION:-} ]]; then
		printf '%s\n' "$VERSION"
	elif ! git -C "$ROOT" describe --tags --always --dirty 2>/dev/null; then
		echo dev
	fi
}
VERSION=$(version)
[[ $VERSION =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "version '$VERSION' is not a valid image tag"
TAG=callwarden:$VERSION
if ((PRINT_TAG)); then
	echo "$TAG"
	exit 0
fi

command -v "$GO" >/dev/null || die "Go not found (GO=$GO)"
offline_prerequisites

# --- the Dockerfile's last stage --------------------------------------------------------

# read_last_stage fills CHANGES (docker import --change instructions, ${VERSION}
# substituted) and COPIED (the destinations of its COPY lines) from the last stage.
read_last_stage() {
	local line INSTR REST
	CHANGES=() COPIED=()
	while IFS= read -r line; do
		split_instruction "$line"
		case $INSTR in
		FROM) CHANGES=() COPIED=() ;; # a new stage: only the last one counts
		COPY) COPIED+=("${REST##*[[:space:]]}") ;;
		ARG) ;;
		USER | WORKDIR | EXPOSE | ENTRYPOINT | CMD | LABEL | ENV | STOPSIGNAL)
			CHANGES+=("${line//\$\{VERSION\}/$VERSION}") ;;
		RUN) ;; # the build stage's; the last stage has no shell to run one
		*) die "$HERE/Dockerfile: instruction $INSTR is not supported by build.sh" ;;
		esac
	done < <(dockerfile_lines "$HERE/Dockerfile")
	local want
	for want in "USER $UID_NONROOT:$UID_NONROOT" 'ENTRYPOINT ["/usr/bin/callwarden"]'; do
		printf '%s\n' "${CHANGES[@]}" | grep -qxF "$want" || die "$HERE/Dockerfile: its last stage lacks '$want'"
	done
}

# go_inputs prints the sha256 of every file of this module the binary is built from.
go_inputs() {
	(cd "$ROOT" && CGO_ENABLED=0 "$GO" list -deps \
		-f "{{if and .Module (eq .Module.Path \"$MODULE\")}}{{\$d := .Dir}}{{range .GoFiles}}{{\$d}}/{{.}}
{{end}}{{range .EmbedFiles}}{{\$d}}/{{.}}
{{end}}{{end}}" ./cmd/callwarden) |
		sed '/^$/d' | LC_ALL=C sort | xargs sha256sum | sed "s|$ROOT/||"
}

# --- build ----------------------------------------------------------------------------

started=$SECONDS
read_last_stage
rootfs_key=$(printf '%s\n' "$SUITE" "$MIRROR" "$VARIANT" "$PKGS" | sha256sum | cut -c1-16)
key=$(inputs_hash "$HERE" "$(cat "$SELF" "$LAB/lib.sh" | sha256sum)" "$VERSION" "$("$GO" version)" \
	"$rootfs_key" "$(go_inputs)" "$(cat "$ROOT/go.mod" "$ROOT/go.sum" | sha256sum)")
current=$(image_key "$TAG" "$LABEL_KEY")
if [[ $current == "$key" && $FORCE == 0 ]]; then
	log "$TAG up to date (inputs sha256 ${key:0:12}), skipping"
	exit 0
fi
log "building $TAG (inputs sha256 ${key:0:12})"

ensure_rootfs callwarden-image "$SUITE" "$PKGS"

STAGE="$BUILD_DIR/stage-callwarden-image"
cleanup
mkdir -p "$STAGE"/{usr/bin,etc/ssl/certs,etc/callwarden,home/nonroot,tmp}

log "go build (CGO_ENABLED=0, version $VERSION)"
(cd "$ROOT" && CGO_ENABLED=0 "$GO" build -trimpath -buildvcs=false \
	-ldflags "-s -w -X main.version=$VERSION" -o "$STAGE/usr/bin/callwarden" ./cmd/callwarden)
tar -C "$STAGE" -xf "$ROOTFS_TAR" ./etc/ssl/certs/ca-certificates.crt
[[ -s $STAGE/etc/ssl/certs/ca-certificates.crt ]] || die "no CA bundle in $(basename "$ROOTFS_TAR")"
cp "$HERE"/rootfs/etc/passwd "$HERE"/rootfs/etc/group "$STAGE/etc/"
chmod 0755 "$STAGE"/usr "$STAGE"/usr/bin "$STAGE"/etc "$STAGE"/etc/callwarden "$STAGE"/usr/bin/callwarden
chmod 0644 "$STAGE"/etc/passwd "$STAGE"/etc/group "$STAGE"/etc/ssl/certs/ca-certificates.crt
chmod 1777 "$STAGE"/tmp
chown "$UID_NONROOT:$UID_NONROOT" "$STAGE"/home/nonroot
"$STAGE/usr/bin/callwarden" version | grep -qF "callwarden $VERSION " || die "the built binary does not say version $VERSION"

for dst in "${COPIED[@]}"; do
	[[ -e $STAGE$dst ]] || die "$HERE/Dockerfile copies $dst, which the offline root lacks"
done

import_image callwarden "$TAG" "callwarden $VERSION, offline build by deploy/image/build.sh" \
	"LABEL $LABEL_KEY=$key" "${CHANGES[@]}"
log "built $TAG ($(image_size "$TAG"), $((SECONDS - started))s)"
