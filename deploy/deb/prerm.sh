#!/bin/sh
# prerm: stop the service before its files go (not on upgrade: postinst
# restarts it then).
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop halley.service || true
    systemctl disable halley.service >/dev/null || true
fi
exit 0
