# SPDX-License-Identifier: Apache-2.0
#
# fieldgate — an index of the go commands everyone can read.
# Go 1.26, no CGO but in fieldgate-repo's PKCS#11 signer. `make help` lists the targets.

VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BUILD_TIME ?= $(shell git log -1 --format=%cI 2>/dev/null)
LDFLAGS    := -s -w -X main.version=$(VERSION) -X main.buildTime=$(BUILD_TIME)
BINARIES   := fieldgated fieldgatectl fieldgate-repo fieldgate-sim
ARCHES     := amd64 arm64 arm
# Release builds inline only where the bytes are hot: the runtime and the
# hash and cipher cores. Everything else (config, MQTT, JSON, TLS
# handshakes, protobuf that go-tuf's signature library drags in) is built
# with -l, which keeps fieldgated for armv7 under 12 MiB (13.3 MiB with
# full inlining); BENCHMARKS.md has the measured cost. They are also
# built without net/http's bundled HTTP/2 (the nethttpomithttp2 tag, 440 KB
# of fieldgated for armv7): the control socket and the metrics listener are
# plain HTTP, where HTTP/2 is never spoken, and a repository is fetched
# over HTTP/1.1 (keep-alive, ETag, Range), which every web server and CDN
# serves. systemd's tests read this line and build with the same flags.
GCFLAGS    := -tags=nethttpomithttp2 -gcflags=all=-l -gcflags=runtime/...= -gcflags=crypto/internal/fips140/sha256= -gcflags=crypto/internal/fips140/sha512= -gcflags=crypto/internal/fips140/aes/...= -gcflags=internal/byteorder=
# Binaries are built without cgo (but fieldgate-repo-pkcs11, below); the race
# detector in `make test` needs it.
GOBUILD    := CGO_ENABLED=0 go build -trimpath $(GCFLAGS)
# The one exception: fieldgate-repo signs with keys in PKCS#11 tokens
# (--key pkcs11:…) only when built with cgo, which links it against glibc.
# make cross builds it so for amd64 and arm64 (replacing the pure-Go build
# in dist/<arch>/); armv7 keeps the pure-Go one, which says PKCS#11 is not
# compiled in. The C cross compilers are Debian's gcc-x86-64-linux-gnu (or
# gcc on an amd64 host) and gcc-aarch64-linux-gnu.
PKCS11_CC_amd64 ?= x86_64-linux-gnu-gcc
PKCS11_CC_arm64 ?= aarch64-linux-gnu-gcc
# Hardened as Debian builds C programs, which lintian checks: PIE, full
# RELRO, fortified C with a stack protector; and the C toolchain's .comment
# section removed (objcopy of the same cross binutils).
PKCS11_CFLAGS  := -O2 -D_FORTIFY_SOURCE=2 -fstack-protector-strong
PKCS11_LDFLAGS := -linkmode=external -extldflags=-Wl,-z,relro,-z,now
CGOBUILD   := CGO_ENABLED=1 CGO_CFLAGS='$(PKCS11_CFLAGS)' GOOS=linux go build -trimpath -buildmode=pie $(GCFLAGS)

.PHONY: help build cross fieldgate-repo-pkcs11 test test-short test-crash conformance interop bench demo deb deb-tools docs spdx footprint fleet lint ci clean

help:
	@echo "make build    build the binaries into dist/"
	@echo "make demo     run the whole update path locally (signed repo, embedded broker, simulated devices), then the patch loop (advisory, staging test, approval, fixed)"
	@echo "make test     vet, then every test with the race detector (CI=true makes missing peers fail)"
	@echo "make test-crash  kill -9 the daemon during jobs: at random, in chosen phases, densely; 100 runs of each"
	@echo "make interop  only the tests against real peers (lrzsz, mosquitto, tftpd, sshd, pymodbus)"
	@echo "make bench    benchmarks, with the peers measured side by side"
	@echo "make cross    static binaries for linux/amd64, arm64 and armv7 into dist/<arch>/ (fieldgate-repo for amd64, arm64 with PKCS#11: cgo)"
	@echo "make fieldgate-repo-pkcs11  only fieldgate-repo with PKCS#11 (cgo, glibc) for amd64 and arm64 into dist/<arch>/"
	@echo "make deb      .deb packages fieldgate + fieldgate-tools for amd64, arm64, armhf into dist/"
	@echo "make deb-tools  fetch nfpm (pinned in systemd/deb/tools/go.mod) once; make deb then needs no network"
	@echo "make docs     regenerate what is generated from the code: man pages, docs/config.md, docs/schema, README's licence table"
	@echo "make spdx     add the SPDX-License-Identifier line to tracked files that lack it"
	@echo "make footprint  binary sizes, start-to-READY, 10-minute idle RSS/CPU with 32 simulated devices"
	@echo "make fleet    FLEET_N (200) real gateways on one nginx repository and one mosquitto: idle cost, polling spread, time to a new target (about 30 min)"
	@echo "make lint     gofmt and go vet"

build:
	$(GOBUILD) -ldflags '$(LDFLAGS)' -o dist/ $(addprefix ./cmd/,$(BINARIES))
	$(GOBUILD) -o dist/ ./cmd/fieldgate-demo

cross:
	@for arch in $(ARCHES); do \
		echo "linux/$$arch"; \
		GOOS=linux GOARCH=$$arch GOARM=7 $(GOBUILD) -ldflags '$(LDFLAGS)' -o dist/$$arch/ $(addprefix ./cmd/,$(BINARIES)) || exit 1; \
	done
	$(MAKE) --no-print-directory fieldgate-repo-pkcs11
	@file dist/*/* 2>/dev/null || ls -l dist/*/

fieldgate-repo-pkcs11:
	GOARCH=amd64 CC=$(PKCS11_CC_amd64) $(CGOBUILD) -ldflags '$(LDFLAGS) $(PKCS11_LDFLAGS)' -o dist/amd64/ ./cmd/fieldgate-repo
	$(PKCS11_CC_amd64:gcc=objcopy) --remove-section=.comment dist/amd64/fieldgate-repo
	GOARCH=arm64 CC=$(PKCS11_CC_arm64) $(CGOBUILD) -ldflags '$(LDFLAGS) $(PKCS11_LDFLAGS)' -o dist/arm64/ ./cmd/fieldgate-repo
	$(PKCS11_CC_arm64:gcc=objcopy) --remove-section=.comment dist/arm64/fieldgate-repo

# Versions come from git tags: v0.1.0 gives 0.1.0, three commits later
# 0.1.0+3.gHASH (build.sh). nfpm is a Go tool of its own module,
# systemd/deb/tools, so the daemon's go.mod does not grow.
deb: cross
	@for arch in $(ARCHES); do systemd/deb/build.sh $$arch '$(VERSION)' dist || exit 1; done

deb-tools:
	go -C systemd/deb/tools mod download

# Each generated document has a test that fails when it is out of date;
# the same tests rewrite them.
docs:
	go test -count=1 -run '^TestManPage$$' ./cmd/fieldgated ./cmd/fieldgatectl ./cmd/fieldgate-repo ./cmd/fieldgate-sim -args -update
	go test -count=1 -run '^TestSchemaFiles$$' ./daemon/api -args -update
	FIELDGATE_UPDATE_README=1 go test -count=1 -run '^TestDependencyLicences$$' .

# The same test that checks the headers adds them (license_test.go).
spdx:
	FIELDGATE_SPDX_FIX=1 go test -count=1 -run '^TestSPDXHeaders$$' .

footprint:
	FIELDGATE_FOOTPRINT=1 go test -run TestFootprint -v -timeout 30m ./systemd

# The fleet harness (internal/fleet): FLEET_N gateways with two simulated
# devices each; FLEET_INTERVAL (15m), FLEET_IDLE_INTERVAL (1m), FLEET_IDLE
# (5m) and FLEET_OUT (a file for the results table) are passed through.
FLEET_N ?= 200
fleet:
	FIELDGATE_FLEET=1 FLEET_N=$(FLEET_N) go test -run TestFleet -timeout 90m -v ./internal/fleet

lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l .; echo "gofmt: the files above need formatting"; exit 1)
	go vet ./...

test: lint
	go test -race -timeout 30m ./...
	$(MAKE) conformance

# The public TUF conformance suite (../shared/tools/tuf-conformance) drives
# `fieldgatectl tuf`, the same resolver and download code the daemon runs.
# Every case must pass. Without the suite beside the checkout it is skipped,
# except under CI=true.
CONFORMANCE := ../shared/tools/tuf-conformance
conformance:
	@if [ ! -x $(CONFORMANCE) ]; then 		if [ "$$CI" = true ]; then echo "conformance: $(CONFORMANCE) missing"; exit 1; fi; 		echo "conformance: skipped ($(CONFORMANCE) not found)"; exit 0; 	fi; 	CGO_ENABLED=0 go build -o dist/conformance/fieldgatectl ./cmd/fieldgatectl && 	$(CONFORMANCE) dist/conformance/fieldgatectl

test-short:
	go test -short ./...

test-crash:
	FIELDGATE_CRASH_ITERATIONS=100 go test -run TestCrashRecovery -timeout 180m -v ./cmd/fieldgate-demo

interop:
	go test -race -run 'TestInterop' -v ./...

bench:
	go test -run '^$$' -bench . -benchtime 1x ./...

demo: build
	./dist/fieldgate-demo -bin dist -work .demo
	./dist/fieldgate-demo patch-loop -bin dist -work .demo/patch-loop

ci: test

clean:
	rm -rf dist .demo
