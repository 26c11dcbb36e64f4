#!/usr/bin/env bash
# Remove the focus-lock service and program. Keeps /etc/focuslock (your config and the API token)
# and /var/lib/focuslock (run logs) unless --purge is given. Same --root/--prefix as install.sh.
set -euo pipefail

root=""
prefix=/opt/focuslock
purge=no
while [ $# -gt 0 ]; do
    case "$1" in
        --root) root="${2:?--root needs a directory}"; shift 2 ;;
        --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
        --purge) purge=yes; shift ;;
        *) echo "uninstall.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

if [ -z "$root" ]; then
    [ "$(id -u)" -eq 0 ] || { echo "uninstall.sh: run as root (sudo)" >&2; exit 1; }
    systemctl disable --now focuslock.service 2>/dev/null || true
fi
rm -f "$root/etc/systemd/system/focuslock.service" "$root/etc/udev/rules.d/99-focuslock.rules"
rm -rf "${root:?}$prefix"
if [ "$purge" = yes ]; then
    rm -rf "$root/etc/focuslock" "$root/var/lib/focuslock" "$root/var/log/focuslock"
fi
if [ -z "$root" ]; then
    systemctl daemon-reload
    udevadm control --reload-rules 2>/dev/null || true
    [ "$purge" = yes ] && userdel focuslock 2>/dev/null || true
fi
echo "focuslock: removed"
