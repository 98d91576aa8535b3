#!/bin/sh
# setup.sh runs inside the image root after the packages are installed, from the
# Dockerfile (RUN) and from build.sh (chroot), so both builds end the same way.
set -eu
mkdir -p /var/lib/redis
# The lab runs redis-server as root in the foreground; Debian's service config is unused.
rm -rf /var/cache/apt/archives/*.deb /var/lib/apt/lists/*
