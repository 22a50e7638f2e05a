#!/usr/bin/env bash
# Installs everything the engine and its tests need on a fresh Debian (or Ubuntu) machine:
# the system packages (tesseract, mosquitto for the tests and the demo, the fonts the plate
# renderer uses) and the Python package with its dev extra in ./.venv. Run as root or with
# sudo available.
#   scripts/setup.sh            runtime + tests
#   scripts/setup.sh --train    also torch (CPU build) for retraining
set -euo pipefail
cd "$(dirname "$0")/.."

train=0
[ "${1:-}" = "--train" ] && train=1

sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"

packages=(tesseract-ocr mosquitto python3-venv python3-pip)
fonts=(fonts-opendin fonts-dejavu-core fonts-dejavu-extra fonts-roboto-unhinted fonts-liberation)
# Fonts are small; tests render fixtures with them, so install them always.
packages+=("${fonts[@]}")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}" >&2
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The test suite starts its own brokers; the packaged service is not needed.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
  $sudo_cmd systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
extras="dev"
[ $train -eq 1 ] && extras="dev,train"
.venv/bin/python -m pip install -q -e ".[${extras}]"
echo "setup: ready; run .venv/bin/edge --help" >&2
