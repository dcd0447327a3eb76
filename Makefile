# kimictl: one static binary from the C core, the embedded Lua and the vendored libraries.
# `make` builds ./kimictl; `make test` runs every test; `make bench` prints the benchmark;
# `make test-asan` runs them on a build with AddressSanitizer and UBSan (in build/asan).
# Third-party sources come from vendor/fetch.sh into build/src (see vendor/manifest).

VERSION  := 0.1.0
CC       := musl-gcc
B        := build
SRCDIR   := build/src
OPT      := -O2
SAN      :=
SECTIONS := -ffunction-sections -fdata-sections
CFLAGS   := -std=c99 $(OPT) $(SAN) $(SECTIONS) -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -D_DARWIN_C_SOURCE
WARN     := -Wall -Wextra -Wshadow -Wmissing-prototypes
STATIC   := -static
LDFLAGS  := $(STATIC) -Wl,--gc-sections $(SAN)
STRIP    := strip
BIN      := kimictl
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt

LUA_O    := lapi lcode lctype ldebug ldo ldump lfunc lgc llex lmem lobject lopcodes \
            lparser lstate lstring ltable ltm lundump lvm lzio lauxlib lbaselib \
            lcorolib ldblib liolib lmathlib loadlib loslib lstrlib ltablib lutf8lib linit
CJSON_O  := lua_cjson strbuf fpconv
UV_O     := fs-poll idna inet random strscpy strtok threadpool timer uv-common \
            uv-data-getter-setters version
UV_UNIX_O := async core dl fs getaddrinfo getnameinfo loop-watcher loop pipe poll process \
            random-devurandom signal stream tcp thread tty udp linux-core linux-inotify \
            linux-syscalls procfs-exepath proctitle random-getrandom random-sysctl-linux epoll
CORE_O   := alloc buf clock sse http tls anchors fs log lock proc loop server
API_O    := boot core http json fs log proc lock hash task server edit
LUA_SRC  := $(shell find lua -name '*.lua' | LC_ALL=C sort)

LUA_OBJS   := $(LUA_O:%=$(B)/obj/lua/%.o)
CJSON_OBJS := $(CJSON_O:%=$(B)/obj/cjson/%.o)
CORE_OBJS  := $(CORE_O:%=$(B)/obj/core/%.o)
API_OBJS   := $(API_O:%=$(B)/obj/api/%.o)
UV_OBJS    := $(UV_O:%=$(B)/obj/uv/%.o) $(UV_UNIX_O:%=$(B)/obj/uv/unix/%.o)
LIBUV      := $(B)/obj/libuv.a
LIBHTTPP   := $(B)/obj/libhttp_parser.a
LIBCURL    := $(B)/curl/lib/.libs/libcurl.a
LIBBEARSSL := $(B)/bearssl/lib/libbearssl.a
LIBTINFO   := $(B)/ncurses/inst/lib/libtinfow.a
LIBEDIT    := $(B)/libedit/src/.libs/libedit.a
STAMP       = $(SRCDIR)/$(1)/.kimictl-stamp
CHECKED     = $(SRCDIR)/$(1)/.kimictl-checked
VENDORED   := $(shell awk '/^[a-z]/ { print $$1 }' vendor/manifest)

INCLUDES := -Isrc -I$(B)/gen -I$(SRCDIR)/lua/src -I$(SRCDIR)/cjson \
            -I$(SRCDIR)/bearssl/inc -I$(SRCDIR)/curl/include \
            -I$(SRCDIR)/libuv/include -I$(SRCDIR)/httpparser -I$(SRCDIR)/libedit/src
DEFS     := -DKIMICTL_VERSION='"$(VERSION)"' -DCURL_STATICLIB

.PHONY: all test test-asan fuzz fuzz-bins leaks soak bench man e2e-openclaw clean distclean
all: $(BIN)

$(BIN): $(B)/obj/main.o $(API_OBJS) $(CORE_OBJS) $(B)/obj/embed.o $(B)/obj/roots.o \
         $(CJSON_OBJS) $(LUA_OBJS) $(LIBUV) $(LIBHTTPP) $(LIBCURL) $(LIBBEARSSL) $(LIBEDIT) $(LIBTINFO)
	$(CC) $(LDFLAGS) -o $@.tmp $^ -lm -lpthread
	$(STRIP) $@.tmp
	mv $@.tmp $@

# --- third-party sources: fetched once; the stamp changes only when the tree is unpacked again.
# fetch.sh runs when the manifest, itself or a patch is newer than the last check; it leaves the
# stamp alone when its package's line and patches are unchanged, so editing one line rebuilds one
# library. The check takes the stamp's time when it can, so `make -n` lists no false rebuilds.
$(call CHECKED,%): vendor/manifest vendor/fetch.sh
	vendor/fetch.sh $*
	@touch $@; for f in $^; do [ $(call STAMP,$*) -nt $$f ] || exit 0; done; touch -r $(call STAMP,$*) $@
$(call STAMP,%): $(call CHECKED,%) ;
# Named here so that make remakes them when missing (it would not for intermediate files).
$(foreach n,$(VENDORED),$(call STAMP,$(n)) $(call CHECKED,$(n))):
# A patch added or removed changes its directory's time; an edited one, its own.
$(call CHECKED,curl): vendor/patches/curl $(wildcard vendor/patches/curl/*.patch)
$(call CHECKED,cjson): vendor/patches/cjson $(wildcard vendor/patches/cjson/*.patch)
$(call CHECKED,lua): vendor/patches/lua $(wildcard vendor/patches/lua/*.patch)

$(B)/obj/lua/%.o: $(call STAMP,lua)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -DLUA_COMPAT_5_3 -DLUA_USE_POSIX -c -o $@ $(SRCDIR)/lua/src/$*.c

$(B)/obj/cjson/%.o: $(call STAMP,cjson) $(call STAMP,lua)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fgnu89-inline -I$(SRCDIR)/lua/src -c -o $@ $(SRCDIR)/cjson/$*.c

# libuv: the Linux file list of its own CMake build, no configure step (its flags, not ours).
$(B)/obj/uv/%.o: $(call STAMP,libuv)
	@mkdir -p $(@D)
	$(CC) -std=gnu89 $(OPT) $(SAN) $(SECTIONS) -fno-strict-aliasing -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 \
	  -I$(SRCDIR)/libuv/include -I$(SRCDIR)/libuv/src -I$(SRCDIR)/libuv/src/unix \
	  -c -o $@ $(SRCDIR)/libuv/src/$*.c

$(B)/obj/httpparser/%.o: $(call STAMP,httpparser)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $(SRCDIR)/httpparser/$*.c

$(LIBUV): $(UV_OBJS)
$(LIBHTTPP): $(B)/obj/httpparser/http_parser.o
$(LIBUV) $(LIBHTTPP):
	rm -f $@
	ar rcs $@ $^

$(LIBBEARSSL): $(call STAMP,bearssl)
	@mkdir -p $(B)/bearssl/lib $(B)/bearssl/obj
	ln -sfn $(abspath $(SRCDIR)/bearssl/inc) $(B)/bearssl/include
	$(MAKE) -C $(SRCDIR)/bearssl CONF=Unix CC=$(CC) AR=ar DLL=no TOOLS=no TESTS=no \
	  BUILD=$(abspath $(B)/bearssl/lib) \
	  CFLAGS='-W -Wall -Os $(SAN) -ffunction-sections -fdata-sections -DBR_RDRAND=0' \
	  $(abspath $(LIBBEARSSL))

$(B)/curl/config.status: $(call STAMP,curl) $(LIBBEARSSL)
	@mkdir -p $(B)/curl
	cd $(B)/curl && CC=$(CC) CFLAGS='-Os $(SAN) -ffunction-sections -fdata-sections' \
	  $(abspath $(SRCDIR)/curl/configure) -q --disable-dependency-tracking \
	  --disable-shared --enable-static --with-bearssl=$(abspath $(B)/bearssl) \
	  --without-openssl --without-gnutls --without-wolfssl --without-mbedtls \
	  --enable-http --disable-ftp --disable-file --disable-ldap --disable-ldaps \
	  --disable-rtsp --disable-dict --disable-telnet --disable-tftp --disable-pop3 \
	  --disable-imap --disable-smb --disable-smtp --disable-gopher --disable-mqtt \
	  --disable-manual --disable-ntlm --disable-ntlm-wb --disable-cookies --disable-doh \
	  --disable-mime --disable-alt-svc --disable-hsts --disable-netrc --disable-websockets \
	  --enable-threaded-resolver --enable-ipv6 --without-zlib --without-brotli \
	  --without-zstd --without-libidn2 --without-libpsl --without-nghttp2 \
	  --without-libssh2 --without-librtmp --without-ca-bundle --without-ca-path

$(LIBCURL): $(B)/curl/config.status
	$(MAKE) -C $(B)/curl/lib libcurl.la
	@touch $@

# ncurses: only libtinfo, with the descriptions of common terminals compiled in (no terminfo
# files needed at run time; the host's tic compiles them). libedit finds it as -lncurses.
TERMS := xterm-256color,xterm,screen-256color,screen,tmux-256color,tmux,vt100,linux
$(B)/ncurses/Makefile: $(call STAMP,ncurses)
	@mkdir -p $(B)/ncurses
	cd $(B)/ncurses && CC=$(CC) CFLAGS='-Os $(SAN) $(SECTIONS)' $(abspath $(SRCDIR)/ncurses/configure) -q \
	  --prefix=$(abspath $(B)/ncurses/inst) --without-shared --with-termlib --enable-widec \
	  --disable-database --with-fallbacks=$(TERMS) --without-progs --without-tests --without-cxx \
	  --without-cxx-binding --without-ada --without-manpages --without-debug --without-pkg-config

$(LIBTINFO): $(B)/ncurses/Makefile
	$(MAKE) -C $(B)/ncurses/include
	$(MAKE) -C $(B)/ncurses/ncurses libs install.libs
	$(MAKE) -C $(B)/ncurses/include install
	@touch $@

# libedit's wchar_t check wants __STDC_ISO_10646__, which musl's wchar_t meets but musl-gcc
# does not define (glibc does).
EDIT_DEFS := $(if $(findstring musl,$(CC)),-D__STDC_ISO_10646__=201206L)
$(B)/libedit/config.status: $(call STAMP,libedit) $(LIBTINFO)
	@mkdir -p $(B)/libedit/lib
	cp $(LIBTINFO) $(B)/libedit/lib/libncurses.a
	cd $(B)/libedit && CC=$(CC) CFLAGS='-Os $(SAN) $(SECTIONS) $(EDIT_DEFS)' \
	  CPPFLAGS='-I$(abspath $(B)/ncurses/inst/include/ncursesw) -I$(abspath $(B)/ncurses/inst/include)' \
	  LDFLAGS='-L$(abspath $(B)/libedit/lib) $(SAN)' $(abspath $(SRCDIR)/libedit/configure) -q \
	  --disable-shared --enable-static --disable-examples --disable-dependency-tracking

$(LIBEDIT): $(B)/libedit/config.status
	$(MAKE) -C $(B)/libedit/src
	@touch $@

# --- kimictl's own code
$(B)/obj/core/%.o: src/%.c $(wildcard src/*.h) $(call STAMP,bearssl) $(call STAMP,curl) \
                   $(call STAMP,libuv) $(call STAMP,httpparser)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) $(INCLUDES) $(DEFS) -c -o $@ $<

$(B)/obj/api/%.o: src/api/%.c $(wildcard src/*.h src/api/*.h) $(call STAMP,lua) $(call STAMP,cjson) \
                  $(call STAMP,libuv) $(LIBEDIT)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) $(INCLUDES) $(DEFS) -c -o $@ $<

$(B)/obj/main.o: src/main.c $(wildcard src/*.h src/api/*.h) $(call STAMP,lua) $(call STAMP,libuv)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) $(INCLUDES) $(DEFS) -c -o $@ $<

# Lua sources become C arrays (POSIX od and sed, no xxd).
$(B)/gen/embed.c: $(LUA_SRC) src/embed.sh
	@mkdir -p $(@D)
	src/embed.sh lua $(LUA_SRC) > $@.tmp && mv $@.tmp $@

# The CA bundle becomes BearSSL trust anchors in C, so the binary never decodes its roots.
$(B)/gen/roots.c: $(CA_BUNDLE) $(B)/tools/mkanchors
	@mkdir -p $(@D)
	$(B)/tools/mkanchors $(CA_BUNDLE) > $@.tmp && mv $@.tmp $@

$(B)/tools/mkanchors: src/mkanchors.c $(B)/obj/core/anchors.o $(B)/obj/core/fs.o $(B)/obj/core/buf.o $(LIBBEARSSL)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) $(INCLUDES) $(LDFLAGS) -o $@ $^

$(B)/obj/%.o: $(B)/gen/%.c src/embed.h $(call STAMP,bearssl)
	$(CC) $(CFLAGS) -Isrc -I$(SRCDIR)/bearssl/inc -c -o $@ $<

# --- tests and benchmark
TEST_BINS := $(B)/tests/test_sse $(B)/tests/test_json $(B)/tests/test_anchors $(B)/tests/test_lock \
             $(B)/tests/test_uv
$(B)/tests/test_sse: tests/c/test_sse.c $(B)/obj/core/sse.o $(B)/obj/core/buf.o
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) $(INCLUDES) $(LDFLAGS) -o $@ $^
$(B)/tests/test_json: tests/c/test_json.c $(CJSON_OBJS) $(LUA_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) $(INCLUDES) $(LDFLAGS) -o $@ $^ -lm

$(B)/tests/test_anchors: tests/c/test_anchors.c $(B)/obj/roots.o $(B)/obj/core/anchors.o $(B)/obj/core/fs.o \
                        $(B)/obj/core/buf.o $(LIBBEARSSL)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) $(INCLUDES) $(LDFLAGS) -o $@ $^

$(B)/tests/test_lock: tests/c/test_lock.c $(B)/obj/core/lock.o $(B)/obj/core/clock.o
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) $(INCLUDES) $(LDFLAGS) -o $@ $^

# Programs on libuv and http-parser: the unit test and the fast fake upstream for `make bench`.
$(B)/tests/test_uv: tests/c/test_uv.c $(LIBUV) $(LIBHTTPP)
$(B)/tests/upstream: tests/bench/upstream.c $(LIBUV) $(LIBHTTPP)
$(B)/tests/test_uv $(B)/tests/upstream:
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) $(INCLUDES) $(LDFLAGS) -o $@ $^ -lpthread

test: $(BIN) $(TEST_BINS)
	KIMICTL=$(abspath $(BIN)) TESTBIN=$(B)/tests CA_BUNDLE=$(CA_BUNDLE) tests/run.sh

# The same tests on a glibc clang build with AddressSanitizer and UBSan, every library
# instrumented, Lua's block cache off (so ASan sees each block), any report fatal.
ASAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -DALLOC_CACHE_MAX=0
test-asan:
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(MAKE) B=build/asan BIN=build/asan/kimictl CC=clang OPT=-O1 SAN='$(ASAN)' STATIC= STRIP=true test

# libFuzzer targets (tests/fuzz): a glibc clang build with ASan, UBSan and coverage, in
# build/fuzz. `make fuzz FUZZ_SECONDS=N` runs each target N seconds from its seeds (and what
# earlier runs found); FUZZ_SECONDS=0 only replays the seeds and the regression inputs;
# FUZZ_TARGETS="server json" runs only those.
FUZZ_SECONDS ?= 60
FUZZ_SAN := -fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=all -fno-omit-frame-pointer -g \
            -DALLOC_CACHE_MAX=0
FUZZ_BINS := $(B)/fuzz_sse $(B)/fuzz_server $(B)/fuzz_lua
$(B)/fuzz_sse: tests/fuzz/fuzz_sse.c $(B)/obj/core/sse.o $(B)/obj/core/buf.o
$(B)/fuzz_server: tests/fuzz/fuzz_server.c $(B)/obj/core/server.o $(B)/obj/core/loop.o $(B)/obj/core/buf.o \
                       $(LIBUV) $(LIBHTTPP)
$(B)/fuzz_lua: tests/fuzz/fuzz_lua.c $(API_OBJS) $(CORE_OBJS) $(B)/obj/embed.o $(B)/obj/roots.o \
                    $(CJSON_OBJS) $(LUA_OBJS) $(LIBUV) $(LIBHTTPP) $(LIBCURL) $(LIBBEARSSL) $(LIBEDIT) $(LIBTINFO)
$(FUZZ_BINS):
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) $(INCLUDES) -fsanitize=fuzzer $(LDFLAGS) -o $@ $^ -lm -lpthread
fuzz-bins: $(FUZZ_BINS)
fuzz:
	$(MAKE) B=build/fuzz CC=clang OPT=-O1 SAN='$(FUZZ_SAN)' STATIC= STRIP=true fuzz-bins
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS='$(FUZZ_TARGETS)' tests/fuzz/run.sh

# `kimictl serve` under valgrind for a few hundred mixed requests (streams, errors, client
# disconnects, refreshes): a glibc build in build/valgrind; fails on any byte definitely lost.
leaks:
	$(MAKE) B=build/valgrind BIN=build/valgrind/kimictl CC=gcc OPT=-O1 SAN='-g -DALLOC_CACHE_MAX=0' STATIC= STRIP=true \
	  build/valgrind/kimictl
	KIMICTL=$(abspath build/valgrind/kimictl) python3 tests/leaks.py

# `kimictl serve` for SOAK_MINUTES (30) under mixed load with refreshes and upstream faults:
# RSS flat after warm-up, no descriptor growth, no error the fake did not cause. Not in CI.
SOAK_MINUTES ?= 30
soak: kimictl
	SOAK_MINUTES=$(SOAK_MINUTES) python3 tests/soak.py

# One real OpenClaw turn through `kimictl serve` (not part of `make test`): the first run
# installs Node 24 and OpenClaw into build/openclaw. DIRECT=1 points OpenClaw at the fake.
e2e-openclaw: kimictl
	tests/openclaw/run.sh

# The man page, generated from the command specs as --help and the completions are.
man: kimictl
	@mkdir -p $(B)
	./kimictl completion man > $(B)/kimictl.1
	@echo "man page: $(B)/kimictl.1 (man ./$(B)/kimictl.1)"

bench: kimictl $(B)/tests/upstream
	python3 tests/bench.py

clean:
	rm -rf kimictl $(B)/obj $(B)/gen $(B)/tests

distclean:
	rm -rf kimictl $(B)
