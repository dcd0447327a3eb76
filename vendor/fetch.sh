#!/bin/sh
# Fetch one pinned Debian source package, verify it, unpack it and apply the patches.
# usage: vendor/fetch.sh NAME   (NAME from vendor/manifest; result in build/src/NAME)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
name=$1
dl=$top/build/dl
dest=$top/build/src/$name

line=$(awk -v n="$name" '$1 == n { print; exit }' "$top/vendor/manifest")
[ -n "$line" ] || { echo "fetch: $name is not in vendor/manifest" >&2; exit 1; }
set -- $line
pkg=$2 ver=$3 sum=$4 skip=$5
upver=${ver#*:}; upver=${upver%-*}

# The stamp records what was unpacked, so an unchanged tree is never fetched twice.
ours=$(cat "$top"/vendor/patches/"$name"/*.patch 2>/dev/null | sha256sum | cut -c1-16)
want="$pkg $ver $sum $skip $ours"
if [ -f "$dest/.kimictl-stamp" ] && [ "$(cat "$dest/.kimictl-stamp")" = "$want" ]; then
  exit 0
fi

mkdir -p "$dl"
dsc=$dl/${pkg}_${ver#*:}.dsc
if [ ! -f "$dsc" ]; then
  echo "fetch: apt-get source $pkg=$ver"
  (cd "$dl" && apt-get source -q --download-only "$pkg=$ver" >"$dl/apt.log" 2>&1) || {
    cat "$dl/apt.log" >&2
    echo "fetch: could not download $pkg=$ver; is deb-src enabled (./build.sh does it)?" >&2
    exit 1; }
fi
orig=$(ls "$dl/${pkg}_${upver}".orig.tar.* | grep -v '\.asc$' | head -n 1)
echo "$sum  $orig" | sha256sum -c --quiet - || {
  echo "fetch: checksum mismatch for $orig; refusing to build it" >&2; exit 1; }

work=$dl/$name.tmp
rm -rf "$dest" "$work"
dpkg-source --no-check --skip-patches -x "$dsc" "$work" >/dev/null
cd "$work"
if [ -f debian/patches/series ]; then
  sed -e 's/#.*//' -e '/^[[:space:]]*$/d' debian/patches/series | while read -r p _; do
    case ",$skip," in *",$p,"*) continue ;; esac
    patch -s -p1 -N < "debian/patches/$p"
  done
fi
for p in "$top"/vendor/patches/"$name"/*.patch; do
  [ -f "$p" ] || continue
  echo "fetch: applying $(basename "$p")"
  patch -s -p1 -N < "$p"
done
if [ "$name" = curl ]; then
  autoreconf -fi >/dev/null 2>&1
fi
cd "$top"
mkdir -p "$(dirname "$dest")"
mv "$work" "$dest"
echo "$want" > "$dest/.kimictl-stamp"
