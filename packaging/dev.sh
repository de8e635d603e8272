#!/usr/bin/env bash
# Developer entry point on a fresh Debian 12 machine (as root):
#   bash packaging/dev.sh demo   install deps, build, run the two-node demo
#   bash packaging/dev.sh test   install deps, build, run every test (CTest)
# BUILD_DIR (default ./build) and JOBS (default nproc) may be set.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-test}
build=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}

deps=(cmake g++ ninja-build pkg-config libboost-dev libboost-filesystem-dev
      libboost-program-options-dev libboost-system-dev libpugixml-dev libsqlite3-dev
      sqlite3 libfuse3-dev fuse3 libarchive-dev libssl-dev nlohmann-json3-dev
      libgtest-dev libgmock-dev iproute2 iputils-ping procps psmisc
      dpkg-dev file  # CPack's .deb (dpkg-shlibdeps), built by CTest
      postgresql-15 libpq-dev mariadb-server mariadb-client)  # the database modules' tests
missing=()
for p in "${deps[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The VM tests' guest: QEMU, a Debian kernel, busybox (about 97 MB of .debs;
# without recommends, which would pull QEMU's GTK front end).
vm_deps=(qemu-system-x86 linux-image-amd64 busybox-static)
vm_missing=()
for p in "${vm_deps[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || vm_missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] || [ ${#vm_missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]} ${vm_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  [ ${#missing[@]} -eq 0 ] || apt-get install -y -qq "${missing[@]}"
  [ ${#vm_missing[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${vm_missing[@]}"
fi

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$jobs"

case "$what" in
  test)
    cd "$build"
    ctest --output-on-failure -j 2 --timeout 600
    ;;
  demo)
    "$build/bin/hakit" demo
    ;;
  *)
    echo "usage: $0 demo|test" >&2
    exit 2
    ;;
esac
