#!/usr/bin/env bash
# Installs everything hwgen needs on a fresh Debian machine with Python 3.11, into ./.venv.
# Idempotent: a second run only checks that everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Icarus for simulation, g++/make/perl for Verilator's generated C++, libusb/libftdi for
# openFPGALoader.
apt_packages="iverilog g++ make perl libusb-1.0-0 libftdi1-2"
missing=""
for pkg in $apt_packages; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

python=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
# torch is pinned in pyproject.toml: `torch==2.13.0` resolves to the CPU wheel.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
.venv/bin/python -c "import amaranth, cocotb, torch, snntorch; print('hwgen environment ready: torch', torch.__version__)"
