#!/bin/sh
# Install the npm packages pinned in tests/node/manifest into build/node/node_modules, without
# npm: download each tarball from the registry, check its sha512 against the manifest, unpack.
# Needs python3 (the download) and openssl (the checksum), as the other tests do. A package
# already unpacked from the same manifest line is left alone, so a second run does nothing.
# usage: tests/node/setup.sh    (NPM_REGISTRY overrides https://registry.npmjs.org)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
mods=$top/build/node/node_modules
dl=$top/build/dl/npm
registry=${NPM_REGISTRY:-https://registry.npmjs.org}

sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$top/tests/node/manifest" | while read -r name ver integrity; do
  dest=$mods/$name
  want="$name $ver $integrity"
  if [ -f "$dest/.kimictl-stamp" ] && [ "$(cat "$dest/.kimictl-stamp")" = "$want" ]; then
    continue
  fi
  file=${name##*/}-$ver.tgz                 # @scope/pkg -> pkg-VERSION.tgz, as the registry names it
  tgz=$dl/$(echo "$name" | tr / +)-$ver.tgz
  mkdir -p "$dl"
  if [ ! -f "$tgz" ]; then
    echo "node setup: downloading $name@$ver"
    python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
      "$registry/$name/-/$file" "$tgz.part"
    mv "$tgz.part" "$tgz"
  fi
  got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 | tr -d '\n')"
  if [ "$got" != "$integrity" ]; then
    rm -f "$tgz"
    echo "node setup: integrity mismatch for $name@$ver (got $got); refusing to install it" >&2
    exit 1
  fi
  work=$dl/unpack.tmp
  rm -rf "$work"
  mkdir -p "$work"
  tar -xzf "$tgz" -C "$work"
  set -- "$work"/*                          # npm tarballs hold one folder, usually package/
  [ $# -eq 1 ] && [ -f "$1/package.json" ] || { echo "node setup: $tgz is not an npm package" >&2; exit 1; }
  python3 - "$1/package.json" "$name" <<'PY' || { rm -rf "$work"; exit 1; }
import json, sys
deps = json.load(open(sys.argv[1])).get("dependencies") or {}
if deps:
    sys.exit("node setup: %s needs %s; only packages without dependencies are installed this way"
             % (sys.argv[2], ", ".join(sorted(deps))))
PY
  echo "$want" > "$1/.kimictl-stamp"
  rm -rf "$dest"
  mkdir -p "$(dirname "$dest")"
  mv "$1" "$dest"
  rm -rf "$work"
done
