#!/usr/bin/env bash
# Builds the .deb with CPack in BUILD/deb and checks what it holds:
#   bash packaging/check_deb.sh BUILD
# Lists the package's contents (dpkg-deb -c), then unpacks it and runs the
# unpacked binaries: the CLI answers, and checks the shipped template.
set -euo pipefail
build=$(cd "$1" && pwd)
out="$build/deb"
rm -rf "$out"
mkdir -p "$out"
cd "$build"
cpack -G DEB -B "$out" >"$out/cpack.log" 2>&1 || { cat "$out/cpack.log"; exit 1; }
deb=$(ls "$out"/hakit_*.deb)
echo "== $(basename "$deb")"
info=$(dpkg-deb -I "$deb")
sed -n 's/^ \(Package\|Version\|Architecture\|Depends\):/\1:/p' <<<"$info"
dpkg-deb -c "$deb" | awk '{print $1, $6}' | tee "$out/contents.txt"
missing=0
for f in ./usr/bin/hakitd ./usr/bin/hakit ./usr/lib/hakit/modules/generic.so \
         ./usr/include/hakit/sdk/module.h ./usr/include/hakit/sdk/export.h \
         ./usr/include/hakit/sdk/host_context.h ./usr/include/hakit/sdk/status.h \
         ./usr/lib/systemd/system/hakitd.service \
         ./usr/share/hakit/templates/generic/conf/userconfig.xml \
         ./usr/share/hakit/templates/generic/bin/start_prim \
         ./usr/share/hakit/templates/generic/bin/stop_prim ./usr/share/doc/hakit/README.md; do
  grep -q " $f\$" "$out/contents.txt" || { echo "missing from the .deb: $f"; missing=1; }
done
grep -q '^-rwxr-xr-x ./usr/share/hakit/templates/generic/bin/start_prim$' "$out/contents.txt" ||
  { echo "template scripts are not executable"; missing=1; }
grep -q '^ Depends:.*libarchive' <<<"$info" || { echo "Depends lacks libarchive"; missing=1; }
dpkg-deb -e "$deb" "$out/control"
[ -x "$out/control/postinst" ] || { echo "no postinst"; missing=1; }
[ $missing = 0 ] || exit 1

# The unpacked tree works as installed: hakit runs, and hakitd finds the
# generic module beside its bin/ (../lib/hakit/modules).
dpkg-deb -x "$deb" "$out/root"
"$out/root/usr/bin/hakit" --help >/dev/null
"$out/root/usr/bin/hakitd" --help >/dev/null
set +e
check=$("$out/root/usr/bin/hakit" module check "$out/root/usr/share/hakit/templates/generic" 2>&1)
rc=$?
set -e
echo "$check"
# The template parses; what is left to fill in is the virtual IP.
[ $rc = 1 ] && grep -q 'VIRTUAL_TO_BE_DEFINED' <<<"$check" ||
  { echo "the template does not check as expected (rc=$rc)"; exit 1; }
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$out/root/usr/lib/systemd/system/hakitd.service" 2>&1 |
    grep -v 'is not executable' || true
fi
echo "ok: $(basename "$deb")"
