#!/bin/sh
# postrm: on purge, remove what postinst made: the data directory (every
# stored message and account: purge means all of it) and the user.
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
fi
if [ "$1" = purge ]; then
    rm -rf /var/lib/halley
    rmdir /etc/halley 2>/dev/null || true
    if getent passwd halley >/dev/null; then
        deluser --quiet --system halley >/dev/null || true
    fi
    if getent group halley >/dev/null; then
        delgroup --quiet --system halley >/dev/null || true
    fi
fi
exit 0
