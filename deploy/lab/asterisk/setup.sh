#!/bin/sh
# setup.sh runs inside the image root after the packages are installed, from the
# Dockerfile (RUN) and from build.sh (chroot), so both builds end the same way.
set -eu
# ARI recordings (POST /channels/{id}/record, /bridges/{id}/record) are written here;
# without it Asterisk answers 500.
mkdir -p /var/spool/asterisk/recording /var/run/asterisk /var/log/asterisk
# The lab runs Asterisk as root (CMD -U root), so the Debian asterisk user's ownership is
# irrelevant; keep the directories writable anyway for a non-root override.
chown -R asterisk:asterisk /var/spool/asterisk /var/lib/asterisk /var/log/asterisk /var/run/asterisk 2>/dev/null || true
rm -rf /var/cache/apt/archives/*.deb /var/lib/apt/lists/*
# users.conf is deprecated in Asterisk 22 and unused by the lab; its sample only warns.
rm -f /etc/asterisk/users.conf
# Music on hold for queue callers: Debian's MOH packages are not installed, so give the
# default class (musiconhold.conf: /usr/share/asterisk/moh) one core prompt to loop.
mkdir -p /usr/share/asterisk/moh
ln -sf /usr/share/asterisk/sounds/en_US_f_Allison/demo-congrats.gsm /usr/share/asterisk/moh/demo-congrats.gsm
