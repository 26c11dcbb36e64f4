#!/usr/bin/env bash
# Make this Raspberry Pi a headless focus-lock box, from this source tree. Safe to run again:
# it upgrades the program, never overwrites an edited config, and restarts the service.
#
#   sudo deploy/install.sh                 install, enable and start focuslock.service
#   deploy/install.sh --root DIR --no-start
#                                          stage every file under DIR (for packaging and tests)
#
# picamera2 comes from Raspberry Pi OS (apt install python3-picamera2), so the venv sees the
# system's site-packages; everything else comes from pyproject.toml.
set -euo pipefail

root=""
prefix=/opt/focuslock
start=yes
python=python3
while [ $# -gt 0 ]; do
    case "$1" in
        --root) root="${2:?--root needs a directory}"; shift 2 ;;
        --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
        --python) python="${2:?--python needs an interpreter}"; shift 2 ;;
        --no-start) start=no; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

here="$(cd "$(dirname "$0")" && pwd)"
source_tree="$(dirname "$here")"
target="$root$prefix"

"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "install.sh: focuslock needs Python >= 3.11 ($python is older)" >&2; exit 1; }
if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (sudo) to install system-wide, or stage with --root DIR" >&2
    exit 1
fi

echo "focuslock: installing the program into $target/venv"
mkdir -p "$target"
"$python" -m venv --system-site-packages "$target/venv"
"$target/venv/bin/python" -m pip install --quiet --upgrade pip
"$target/venv/bin/python" -m pip install --quiet "$source_tree"
install -m 0644 "$source_tree/README.md" "$target/README.md"

echo "focuslock: installing the service, the udev rule and the config"
install -D -m 0644 "$here/focuslock.service" "$root/etc/systemd/system/focuslock.service"
install -D -m 0644 "$here/99-focuslock.rules" "$root/etc/udev/rules.d/99-focuslock.rules"
config="$root/etc/focuslock/focuslock.toml"
if [ -e "$config" ]; then
    echo "focuslock: keeping the existing $config"
else
    install -D -m 0644 "$here/focuslock.box.toml" "$config"
fi
# The API token (docs/service.md, Authentication): made once, readable by root and the service's
# group only; a new one with `focuslock token rotate`.
token="$root/etc/focuslock/token"
new_token=no
if [ -e "$token" ]; then
    echo "focuslock: keeping the existing API token $token"
else
    "$target/venv/bin/python" -c 'import sys; from pathlib import Path
from controller.service.auth import write_new_token; write_new_token(Path(sys.argv[1]))' "$token"
    new_token=yes
    echo "focuslock: wrote a new API token to $token (mode 0640)"
fi
if "$target/venv/bin/focuslock" config show --config "$config" | grep -qx 'token_file = ""'; then
    echo "focuslock: note: $config names no [service] token_file, so the API takes no token;" \
         "add token_file = \"/etc/focuslock/token\" under [service] (docs/service.md)"
fi
# Refuse to finish with a config the program would reject at boot. Staged under --root, the
# config is for another machine: check what it says, not what this machine has.
if [ -z "$root" ]; then
    "$target/venv/bin/focuslock" config check --config "$config"
else
    "$target/venv/bin/focuslock" config show --config "$config" >/dev/null
fi

if [ -z "$root" ]; then
    id focuslock >/dev/null 2>&1 \
        || useradd --system --home-dir /var/lib/focuslock --shell /usr/sbin/nologin focuslock
    usermod -a -G dialout,video focuslock
    [ "$new_token" = no ] || chown root:focuslock "$token"  # the service reads it as its group
    udevadm control --reload-rules && udevadm trigger --subsystem-match=tty
    systemctl daemon-reload
    if [ "$start" = yes ]; then
        systemctl enable focuslock.service
        systemctl restart focuslock.service
        echo "focuslock: running; follow it with: journalctl -fu focuslock"
    fi
fi
echo "focuslock: installed"
