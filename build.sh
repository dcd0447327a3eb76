#!/bin/sh
# Build kimictl on Debian 12: install what the build and the tests need, then make.
# Safe to run again: nothing is fetched, configured or rebuilt that has not changed.
set -eu
cd "$(dirname "$0")"

# command that proves it is there -> Debian package that provides it
needs="musl-gcc:musl-tools dpkg-source:dpkg-dev autoreconf:autoconf automake:automake
libtoolize:libtool make:make patch:patch gcc:gcc python3:python3 openssl:openssl node:nodejs
wrk:wrk tic:ncurses-bin tmux:tmux groff:groff-base clang:clang valgrind:valgrind
socat:socat"
missing=""
for pair in $needs; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair#*:}"
done
[ -f /etc/ssl/certs/ca-certificates.crt ] || missing="$missing ca-certificates"
# make test-asan and make fuzz: clang's sanitizer and libFuzzer runtimes.
ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.asan-x86_64.a >/dev/null 2>&1 ||
  missing="$missing libclang-rt-14-dev"

sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo

# vendor/fetch.sh uses `apt-get source`, which needs deb-src entries.
has_deb_src() {
  grep -qsE '^[[:space:]]*(Types:.*deb-src|deb-src[[:space:]])' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources
}
update=""
if ! has_deb_src; then
  echo "build.sh: enabling deb-src in apt's sources (for apt-get source)"
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && $sudo sed -i 's/^Types: deb$/Types: deb deb-src/' "$f"
  done
  if [ -f /etc/apt/sources.list ]; then
    $sudo sed -i 's/^deb \(.*\)$/deb \1\ndeb-src \1/' /etc/apt/sources.list
  fi
  update=1
fi
if [ -n "$missing" ] || [ -n "$update" ] || ! apt-cache showsrc lua5.4 2>/dev/null | grep -q '^Package:'; then
  $sudo apt-get update -q
fi
if [ -n "$missing" ]; then
  echo "build.sh: installing$missing"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

make -j"$(nproc 2>/dev/null || echo 2)"
ls -l kimictl
