#!/bin/sh
# postinst: the halley system user and its data directory, then systemd
# (only where systemd is running; a container or chroot has none).
set -e

if [ "$1" = configure ]; then
    if ! getent passwd halley >/dev/null; then
        adduser --system --group --quiet --no-create-home \
            --home /var/lib/halley --shell /usr/sbin/nologin halley
    fi
    # The unit's StateDirectory= makes it too, but `halley serve` run by
    # hand (or without systemd) needs it: 0700 (C-14), owned by halley.
    install -d -m 0700 -o halley -g halley /var/lib/halley
fi

if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
    if [ -z "$2" ]; then
        # First install: enable and start, as Debian services do.
        systemctl enable halley.service >/dev/null || true
        systemctl start halley.service || true
    else
        systemctl try-restart halley.service || true
    fi
fi
exit 0
