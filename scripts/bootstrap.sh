#!/usr/bin/env bash
# Installs what custody needs on a fresh Debian machine, idempotently:
#   system packages (apt), a virtual environment in .venv, the Python requirements.
# Usage: scripts/bootstrap.sh demo|test   (test adds the test tools and Chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
purpose=${1:-demo}

apt_packages=(libzbar0 fonts-wqy-zenhei poppler-utils)
if [ "$purpose" = test ]; then
  # golang: the outside verifier (Go's sumdb note and tlog packages) cross-checks our log formats.
  apt_packages+=(chromium chromium-driver golang-go golang-golang-x-mod-dev)
fi

missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "custody: installing system packages: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if [ ! -x .venv/bin/python ]; then
  echo "custody: creating the virtual environment .venv" >&2
  python3 -m venv .venv
fi

requirements=requirements.txt
[ "$purpose" = test ] && requirements=requirements-dev.txt
stamp=.venv/.custody-$purpose-installed
wanted=$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "custody: installing Python requirements ($requirements)" >&2
  .venv/bin/python -m pip install -q --upgrade pip >&2
  .venv/bin/python -m pip install -q -r "$requirements" >&2
  .venv/bin/python -m pip install -q --no-deps -e . >&2
  echo "$wanted" > "$stamp"
fi
