# Sourced by the VM test scripts (test-cgroup2.sh, test-systemd.sh): install what booting Debian's
# kernel under QEMU with virtme-ng needs, plus the Debian packages the caller names, only if missing.
#   need_vm_tools NAME PACKAGE...     (NAME prefixes the messages)
need_vm_tools() {
  local name=$1 pkg
  shift
  local need_apt=()
  for pkg in qemu-system-x86 linux-image-amd64 "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
  done
  if ((${#need_apt[@]})); then
    echo "$name: installing Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  fi
  [ -x .venv/bin/vng ] || .venv/bin/python -m pip install -q --disable-pip-version-check 'virtme-ng>=1.40,<2'
}
