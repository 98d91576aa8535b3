#!/usr/bin/env bash
# load-freeswitch.sh loads the lab's FreeSWITCH image, callwarden-lab/freeswitch:1.10.12,
# from a `docker save` tarball (no registry, no build: FreeSWITCH is in no Debian suite
# and building it takes about 30 minutes). It does nothing when the image is already
# loaded; otherwise it checks the tarball's sha256 before `docker load`, and fails with
# the reason when the tarball is missing or is not the expected one, so that CI fails
# instead of running without FreeSWITCH. A Docker that can pull builds the same image
# from source with deploy/lab/freeswitch/Dockerfile (see its README).
#
# Usage: deploy/lab/load-freeswitch.sh [--force]
#   --force    load the tarball even if the image is already there
#
# Environment: CALLWARDEN_FREESWITCH_IMAGE_TAR (default ../shared/images/freeswitch-1.10.12.tar.xz,
# relative to the repository root), CALLWARDEN_FREESWITCH_IMAGE_SHA256 (default: the
# sha256 of that release of the image, below).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TAG=callwarden-lab/freeswitch:1.10.12
TAR=${CALLWARDEN_FREESWITCH_IMAGE_TAR:-../shared/images/freeswitch-1.10.12.tar.xz}
WANT_SHA256=${CALLWARDEN_FREESWITCH_IMAGE_SHA256:-21961b77aefae910076ab7ec6d09e50d9fd7379f6fdd6bb2d4ffac29cc2b1683}

log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[lab] error: %s\n' "$*" >&2; exit 1; }

FORCE=0
while (($#)); do
	case $1 in
	--force) FORCE=1 ;;
	-h | --help) sed -n '10,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument: $1" ;;
	esac
	shift
done

command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "Docker engine unreachable (docker info failed)"

if [[ $FORCE == 0 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
	log "freeswitch image $TAG already loaded ($(docker image inspect --format '{{ .Id }}' "$TAG" | cut -c8-19)), skipping"
	exit 0
fi

# A relative path is relative to the repository root, wherever make runs from.
[[ $TAR == /* ]] || TAR=$(realpath -m "$ROOT/$TAR")
[[ -f $TAR ]] || die "freeswitch image tarball not found: $TAR
  the lab needs $TAG; put freeswitch-1.10.12.tar.xz there, point
  CALLWARDEN_FREESWITCH_IMAGE_TAR at it, or build the image from source:
  docker build -t $TAG deploy/lab/freeswitch (see deploy/lab/freeswitch/README.md)"

started=$SECONDS
log "freeswitch: checking sha256 of $TAR"
got=$(sha256sum "$TAR" | cut -d' ' -f1)
[[ $got == "$WANT_SHA256" ]] || die "freeswitch image tarball $TAR has sha256 $got, want $WANT_SHA256: refusing to load it (a truncated copy or another image)"

log "freeswitch: docker load -i $TAR"
docker load -i "$TAR" | sed -u 's/^/[lab]   freeswitch | /'
docker image inspect "$TAG" >/dev/null 2>&1 || die "$TAR loaded, but it holds no image $TAG"
log "freeswitch: loaded $TAG ($(docker image inspect --format '{{ .Size }}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'), $((SECONDS - started))s)"
