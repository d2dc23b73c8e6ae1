#!/usr/bin/env bash
# Make this machine able to build, test and run Galaxy: the Debian packages Galaxy drives (ZooKeeper,
# iptables, e2fsprogs, util-linux, iproute2) and a virtualenv with the project. Idempotent and quiet
# when everything is there already, so every `make` target can call it.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in zookeeper iptables e2fsprogs util-linux iproute2 procps openjdk-17-jre-headless libseccomp2 redis-server \
           python3-pip python3-setuptools python3-wheel; do  # Debian python: the playbook test builds the wheel
  have "$pkg" || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
  echo "bootstrap: installing Debian packages: ${need_apt[*]}"
  if [ "$(id -u)" -ne 0 ]; then echo "bootstrap: need root to install ${need_apt[*]}" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
stamp=.venv/.galaxy-installed
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing galaxy into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
  touch "$stamp"
fi
