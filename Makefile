# epsinas — build, test, run, bench.
#   make run         build and start the service on :8080 (embedded ramp batch)
#   make             build (checks the libraries with pkg-config; never installs)
#   make deps        install the Debian packages the build needs (make test-deps: the tests')
#   make test        unit + golden + service tests (installs Debian deps first)
#                    make test T="http jobs" runs only build/tests/test_http, test_jobs
#   make test-quick  the unit tests that start no server (well under a minute)
#   make install     PREFIX=/usr/local DESTDIR=: binary, library, headers, epsinas.pc
#   make docs-check  the example responses in README, docs/ and openapi.yaml are the product's
#   make check-asan  the same suite under ASan + UBSan
#   make check-portable  the engine tests on a portable x86-64-v2 build (no AVX-512 kernels)
#   make test-hostile  raw-socket hostile clients against the real binary (slowloris, framing, limits)
#   make test-browser  the dashboard in headless chromium against the real server (tests/browser/)
#   make web         rebuild the dashboard (web/ -> web/dist, embedded in the binary) now
#   make bench       engines vs the PyTorch reference, service vs nginx
#   make image       the container image (podman); make test-image runs it
#   make equiv-full  fast vs dense engine on every NB201 cell (batch 8, ~25 min)
# BUILD=dir selects the build directory (so parallel builds do not collide).

BUILD      ?= build
CC         ?= gcc
ARCH_FLAGS ?= -march=native
OPT        ?= -O3
PKGS       := openblas jansson libmicrohttpd libuv hiredis libcurl sqlite3
TEST_PKGS  := cmocka

# -ffp-contract=off: no FMA contraction, to round like the reference.
# Never fast-math flags: denormals and NaN rules are part of the metric.
# SANITIZE: extra compile+link flags (make check-asan sets it).
SANITIZE ?=
CFLAGS   ?= $(OPT) -g
WARN     := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Werror
CFLAGS   += $(SANITIZE) -std=c11 $(WARN) -D_GNU_SOURCE -ffp-contract=off $(ARCH_FLAGS) \
            -Iinclude -pthread
LDLIBS   += -lm -pthread $(SANITIZE)
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
CFLAGS   += -DEPS_VERSION='"$(VERSION)"'

DEPS_STAMP := $(BUILD)/.deps-build
TEST_STAMP := $(BUILD)/.deps-test
# Plain `make` never calls apt-get: it checks the libraries with pkg-config
# and stops, naming what is missing. The goals the README promises work on a
# fresh machine (run, test and the check-* suites) install first.
INSTALL_GOALS := deps test-deps run test test-quick check check-asan check-portable check-tsan \
                 test-cluster test-hostile test-browser bench reproduce batch-study equiv-full \
                 fuzz fuzz-smoke test-image docs-check check-install
ifneq ($(filter $(INSTALL_GOALS),$(MAKECMDGOALS)),)
EPS_INSTALL ?= 1
endif
EPS_INSTALL ?= 0
export EPS_INSTALL
PKG_OK     := $(BUILD)/.pkg-build
TPKG_OK    := $(BUILD)/.pkg-test

# The library is every pipeline stage but the command line (src/README.md);
# src/cli/ is linked into the binary only.
LIB_DIRS := core engine spaces service eval
SRC      := $(sort $(foreach d,$(LIB_DIRS),$(wildcard src/$(d)/eps_*.c)))
OBJ      := $(SRC:src/%.c=$(BUILD)/obj/%.o)
# The dashboard (web/, built by vite into web/dist) becomes C at build time:
# scripts/web-build.sh runs on every make but rebuilds only when web/'s
# sources or openapi.yaml changed, and rewrites the C only when it differs.
WEB_C    := $(BUILD)/gen/eps_web_assets.c
WEB_OBJ  := $(BUILD)/obj/gen/eps_web_assets.o
OBJ      += $(WEB_OBJ)
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
CLI_OBJ  := $(CLI_SRC:src/%.c=$(BUILD)/obj/%.o)
HDRS     := $(wildcard include/epsinas/*/*.h) $(wildcard src/*/*.h)
LIB      := $(BUILD)/libepsinas.a
BIN      := $(BUILD)/epsinas
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_UTIL:= $(sort $(wildcard tests/util_*.c))
# Tests that are scripts, not cmocka binaries (run.sh counts their TAP too).
TEST_SCRIPTS ?= tests/test_pyclient.sh

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TPKG_CFLAGS = $(shell pkg-config --cflags $(TEST_PKGS) 2>/dev/null)
TPKG_LIBS   = $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null)

.PHONY: all deps test-deps run test check check-asan check-portable bench clean test-cluster reproduce equiv-full \
        image test-image check-manifests
.PHONY: test-hostile check-layout batch-study web test-browser FORCE test-quick install check-install docs-check

all: $(BIN)

$(DEPS_STAMP): scripts/install-deps.sh
	@mkdir -p $(BUILD)
	@scripts/install-deps.sh build
	@touch $@

$(TEST_STAMP): scripts/install-deps.sh | $(DEPS_STAMP)
	@mkdir -p $(BUILD)
	@scripts/install-deps.sh test
	@touch $@

deps: $(DEPS_STAMP)
test-deps: $(TEST_STAMP)

ifeq ($(EPS_INSTALL),1)
$(PKG_OK): $(DEPS_STAMP)
$(TPKG_OK): $(TEST_STAMP)
endif
$(PKG_OK):
	@mkdir -p $(BUILD)
	@pkg-config --exists $(PKGS) || { pkg-config --print-errors --exists $(PKGS); \
	  echo "make: missing libraries (pkg-config: $(PKGS)); 'make deps' installs the Debian packages" >&2; exit 1; }
	@touch $@
$(TPKG_OK): | $(PKG_OK)
	@pkg-config --exists $(TEST_PKGS) || { pkg-config --print-errors --exists $(TEST_PKGS); \
	  echo "make: missing test libraries (pkg-config: $(TEST_PKGS)); 'make test-deps' installs them" >&2; exit 1; }
	@touch $@

# -MMD -MP: each object lists the headers it read (build/obj/**/*.d).
$(BUILD)/obj/%.o: src/%.c | $(PKG_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Isrc -MMD -MP -c $< -o $@

-include $(OBJ:.o=.d) $(CLI_OBJ:.o=.d)

$(WEB_C): FORCE | $(PKG_OK)
	@scripts/web-build.sh $@

$(WEB_OBJ): $(WEB_C) include/epsinas/service/http_static.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

web:
	@rm -f $(BUILD)/gen/.web-failed
	EPS_WEB_RETRY=1 scripts/web-build.sh $(WEB_C)

FORCE:

$(LIB): $(OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(CLI_OBJ) $(LIB)
	$(CC) $(CFLAGS) $(CLI_OBJ) $(LIB) $(PKG_LIBS) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c $(TEST_UTIL) tests/*.h $(HDRS) $(LIB) | $(TPKG_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(TPKG_CFLAGS) -Isrc -Itests $< $(filter $(BUILD)/obj/cli/%.o,$^) $(TEST_UTIL) $(LIB) \
	    $(PKG_LIBS) $(TPKG_LIBS) $(LDLIBS) -o $@

# test_cli checks the CLI's shared helpers, which are not in the library.
$(BUILD)/tests/test_cli: $(BUILD)/obj/cli/eps_cli_common.o

run: $(BIN)
	./scripts/run.sh $(BIN)

# T="a b": only those tests (test_a or a; a script in tests/ by its name).
ifdef T
TEST_SEL     := $(foreach t,$(T),$(patsubst test_%,%,$(basename $(notdir $(t)))))
TEST_BIN     := $(filter $(TEST_SEL:%=$(BUILD)/tests/test_%),$(TEST_BIN))
TEST_SCRIPTS := $(filter $(TEST_SEL:%=tests/test_%.sh),$(TEST_SCRIPTS))
endif
test: $(TEST_STAMP) $(BIN) $(TEST_BIN) check-layout
	@[ -n "$(strip $(TEST_BIN) $(TEST_SCRIPTS))" ] || { echo "make test: no test matches T='$(T)' (tests/test_*.c)" >&2; exit 2; }
	BUILD=$(BUILD) ./tests/run.sh $(TEST_BIN) $(TEST_SCRIPTS)

# The unit tests: no server, no ../shared sweeps, under a minute on 2
# cores (test_nb101, ~1 min alone, runs in make test).
QUICK_TESTS := util md5 batch cachekey encodings eval gspace memest nb201 nlp queue cli json_exact kernels
QUICK_BIN   := $(QUICK_TESTS:%=$(BUILD)/tests/test_%)
test-quick: $(TPKG_OK) $(BIN) $(QUICK_BIN) check-layout
	BUILD=$(BUILD) ./tests/run.sh $(QUICK_BIN)

# make install PREFIX=/opt/epsinas [DESTDIR=/tmp/stage]: the binary, the
# static library, the public headers and a pkg-config file for the library
# (static only, so its libraries are plain Requires: every program needs them).
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
# epsinas.pc is written at install time: it names the PREFIX installed to.
PC_LINES = 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCDIR)' '' \
  'Name: epsinas' 'Description: epsinas zero-cost NAS metric (library)' 'Version: $(VERSION)' \
  'Requires: $(PKGS)' 'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -lepsinas -lm -pthread'
install: $(BIN) $(LIB)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR)
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/epsinas
	install -m 644 $(LIB) $(DESTDIR)$(LIBDIR)/libepsinas.a
	printf '%s\n' $(PC_LINES) > $(DESTDIR)$(LIBDIR)/pkgconfig/epsinas.pc
	cd include && find epsinas -name '*.h' -exec install -D -m 644 {} $(DESTDIR)$(INCDIR)/{} \;

# Every marked example response in README.md, docs/ and openapi.yaml is what
# the product answers (scripts/docs-check.py says how to mark one; --update
# rewrites them); then a changed digit must be caught.
docs-check: $(TEST_STAMP) $(BIN)
	/usr/bin/python3 scripts/docs-check.py --bin $(BIN)
	/usr/bin/python3 scripts/docs-check.py --bin $(BIN) --self-test

# Installs into a temporary prefix and builds a small program against it
# through pkg-config (scripts/check-install.sh).
check-install: $(BIN)
	scripts/check-install.sh

# Includes point down the pipeline, no module cycle (src/README.md).
check-layout:
	scripts/check-layout.sh

# A real fleet on loopback: redis + 3 replicas + nginx (deploy/); see tests/cluster/run.sh.
test-cluster: $(TEST_STAMP) $(BIN)
	EPS_BIN=$(BIN) ./tests/cluster/run.sh

# Hostile clients on loopback (tests/hostile/): slowloris, oversized and
# malformed requests, drain, log injection; ends with "N passed, N failed".
test-hostile: $(BIN)
	./tests/hostile/run.sh $(BIN)

check: test

# The dashboard in Debian's chromium (headless, playwright-core) against the
# real server on loopback; screenshots in $(BUILD)/browser/.
test-browser: $(BIN)
	@scripts/install-deps.sh browser
	EPS_BIN=$(BIN) BUILD=$(BUILD) ./tests/browser/run.sh

# The generic loops the AVX-512 kernels stand in for (the Docker image's
# default target): the engine equivalence and NB201 golden tests.
check-portable:
	$(MAKE) BUILD=build-portable ARCH_FLAGS=-march=x86-64-v2 \
	  TEST_BIN="build-portable/tests/test_engine_equiv build-portable/tests/test_golden_nb201 build-portable/tests/test_kernels" TEST_SCRIPTS= test

check-asan:
	$(MAKE) BUILD=build-asan OPT=-O1 \
	  SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	  EPS_ASAN=1 test

# The README's reproduction table (needs ../shared).
reproduce: $(BIN)
	./scripts/reproduce.sh $(BIN)

# Which built-in batch each space should default to: every candidate on the
# dev data of every space (needs ../shared; ~15 min on 2 cores), one table
# (docs/batches.md). REUSE=1 keeps complete score CSVs in build/batch-study.
batch-study: $(BIN)
	./scripts/batch-study.sh $(BIN) ../shared $(BUILD)/batch-study

# Fast vs dense engine on all 15,625 NB201 cells at batch 8 (~25 min on 2 cores).
equiv-full: $(BIN)
	./scripts/equiv-full.sh $(BIN)

bench: $(BIN)
	@scripts/install-deps.sh all
	./bench/run.sh $(BIN)

# The container image (podman; a local debian:12-slim is bootstrapped when
# none can be pulled) and its smoke test against the native build.
IMAGE ?= localhost/epsinas:ci
image:
	scripts/image.sh build $(IMAGE)

test-image: $(BIN)
	EPS_BIN=$(BIN) scripts/image.sh test $(IMAGE)

# deploy/docker-compose.yml and deploy/k8s/*.yaml through real validators, offline.
check-manifests:
	tests/deploy/check.sh

clean:
	rm -rf build build-* bench/out web/dist

# ---- fuzzing and ThreadSanitizer (tests/fuzz/README.md) --------------------
#   make fuzz [FUZZ_SECONDS=60] [FUZZ_ONLY="nb201 http"]  each harness for N s
#   make fuzz-smoke   replay regressions + corpora, then each harness for 30 s
#   make check-tsan   the service tests under ThreadSanitizer (build-tsan)
# Library objects: clang with -fsanitize=fuzzer-no-link,address,undefined;
# harnesses link libFuzzer (build-fuzz/fuzz_NAME) or tests/fuzz/replay.c
# (build-fuzz/replay_NAME, no fuzzer: what keeps the regressions checked).
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_ONLY    ?= $(FUZZ_NAMES)
FUZZ_BINS    := $(FUZZ_NAMES:%=$(BUILD)/fuzz_%) $(FUZZ_NAMES:%=$(BUILD)/replay_%)

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-bins check-tsan

$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(LIB)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(PKG_CFLAGS) -Isrc $< $(LIB) $(PKG_LIBS) $(LDLIBS) -fsanitize=fuzzer -o $@

$(BUILD)/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c tests/fuzz/fuzz.h $(LIB)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Isrc $< tests/fuzz/replay.c $(LIB) $(PKG_LIBS) $(LDLIBS) -o $@

fuzz-bins: $(FUZZ_BINS)

fuzz-build:
	@scripts/install-deps.sh fuzz
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=clang OPT=-O1 SANITIZE="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" fuzz-bins

fuzz: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) tests/fuzz/run.sh fuzz $(FUZZ_SECONDS) $(FUZZ_ONLY)

fuzz-smoke: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) tests/fuzz/run.sh smoke 30 $(FUZZ_ONLY)

# gcc's TSan runtime; the service tests start the TSan binary (EPS_BIN via
# BUILD), whose reports land in build-tsan/tsan/ with the tests' own: any
# report fails the target. tests/tsan.supp lists third-party code only.
# -Wno-stringop-overflow: gcc 12 at -O1 with TSan instrumentation misjudges a
# memset size in the fast engine (the size is bounded; plain builds agree).
TSAN_TESTS ?= test_http test_redis test_sweep
TSAN_BUILD := build-tsan
TSAN_SAN   := -fsanitize=thread -fno-omit-frame-pointer -Wno-stringop-overflow
check-tsan:
	$(MAKE) BUILD=$(TSAN_BUILD) OPT=-O1 SANITIZE="$(TSAN_SAN)" $(TSAN_BUILD)/.deps-test $(TSAN_BUILD)/epsinas \
	  $(TSAN_TESTS:%=$(TSAN_BUILD)/tests/%)
	@rm -rf $(TSAN_BUILD)/tsan && mkdir -p $(TSAN_BUILD)/tsan
	@TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp log_path=$(CURDIR)/$(TSAN_BUILD)/tsan/report second_deadlock_stack=1" \
	  EPS_ASAN=1 BUILD=$(TSAN_BUILD) ./tests/run.sh $(TSAN_TESTS:%=$(TSAN_BUILD)/tests/%); rc=$$?; \
	  if ls $(TSAN_BUILD)/tsan/report.* >/dev/null 2>&1; then \
	    echo "check-tsan: ThreadSanitizer reports (tests and the servers they start):"; \
	    grep -h -A12 '^WARNING: ThreadSanitizer' $(TSAN_BUILD)/tsan/report.* | head -n 120; rc=1; fi; \
	  exit $$rc
