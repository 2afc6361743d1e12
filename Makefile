# Build, generate and test the Go BlueChi implementation.
GO ?= go
GENERATED := gen internal/apitest/roundtrip_gen_test.go

.PHONY: all build generate check-generate test fuzz-smoke lint bench bench-cluster bench-scale clean run deps install

all: build

## build: compile every command in cmd/ into bin/
build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -o bin/ ./cmd/...

## deps: install the Debian packages the daemons and tests need (as root)
deps:
	@command -v dbus-daemon >/dev/null && command -v systemd >/dev/null && command -v busctl >/dev/null && command -v nsenter >/dev/null || \
		{ echo "installing dbus-daemon systemd util-linux python3-dasbus"; apt-get update -qq && apt-get install -y -qq --no-install-recommends dbus dbus-daemon systemd util-linux python3-dasbus; }

## run: a local cluster of 3 nodes (real systemd --user each) until Ctrl-C
run: deps build
	$(GO) run ./tools/localcluster -n 3 -bin bin

## generate: regenerate gen/ and the generated tests from idl/
generate:
	$(GO) generate ./...

## check-generate: fail when the committed generated code differs from idl/
check-generate: generate
	@git diff --exit-code --stat -- $(GENERATED) || { echo "generated code is stale: run make generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- $(GENERATED))" || { git status --porcelain -- $(GENERATED); echo "untracked generated files: run make generate and commit"; exit 1; }

## test: all tests with the race detector, and memtrim's also as a
## position-independent executable (as distributions build it). The
## timeout is per package: internal/sysmode may debootstrap its base first.
test:
	$(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -count=1 -buildmode=pie ./internal/memtrim
	$(MAKE) fuzz-smoke

## fuzz-smoke: every fuzz target for FUZZTIME each (go test takes one -fuzz
## target per run); longer runs: make fuzz-smoke FUZZTIME=10m
FUZZ_TARGETS := internal/transport:FuzzServerHandshake internal/config:FuzzParse internal/config:FuzzValues \
	internal/controller:FuzzAgentMessages internal/ctl/bluechictl:FuzzCommandLine internal/ctl/unitprop:FuzzParse \
	internal/unitname:FuzzCheck internal/wire:FuzzCopy internal/wire:FuzzParse
## Go 1.26's fuzz coordinator can fail a run with a bare "context deadline
## exceeded" as -fuzztime ends (golang/go#75804, fixed in Go 1.27): such a
## run, without a failing input, counts as passed.
FUZZTIME ?= 3s
fuzz-smoke:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
		if out=$$($(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) -parallel=1 ./$$pkg 2>&1); then \
			echo "$$out" | grep '^fuzz: elapsed' | tail -1; \
		elif echo "$$out" | grep -q '^    context deadline exceeded$$' && ! echo "$$out" | grep -q 'Failing input written'; then \
			echo "$$out" | grep '^fuzz: elapsed' | tail -1; echo "(stopped by golang/go#75804, no failure)"; \
		else \
			echo "$$out" | grep -v ' level=' | tail -40; exit 1; \
		fi; \
	done

## lint: gofmt and go vet
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "run gofmt -w"; exit 1; }
	$(GO) vet ./...

## bench: generated layer against plain godbus
bench:
	$(GO) test -run XXX -bench . -count 5 ./internal/apitest

## bench-cluster: benchmarks on sandboxed clusters with real systemd (root)
bench-cluster:
	$(GO) test -run XXX -bench 'StartUnit|ListUnits' -benchtime 300x ./internal/cluster
	$(GO) test -run XXX -bench Memory -benchtime 1000x ./internal/cluster
	$(GO) test -run XXX -bench MonitorStorm -benchtime 1x ./internal/e2e

## bench-scale: the real controller with 10..2000 simulated agents over TCP
## (memory per node, idle CPU, API latencies, offline detection)
bench-scale:
	$(GO) test -run XXX -bench Scale -benchtime 300x -timeout 30m ./internal/scalebench

## install: binaries, units, D-Bus policy and default configs under DESTDIR
DESTDIR ?=
install: build
	install -d $(DESTDIR)/usr/libexec $(DESTDIR)/usr/bin $(DESTDIR)/usr/lib/systemd/system $(DESTDIR)/usr/lib/systemd/user \
		$(DESTDIR)/usr/share/dbus-1/system.d $(DESTDIR)/usr/share/dbus-1/interfaces \
		$(DESTDIR)/usr/share/bluechi/config $(DESTDIR)/usr/share/bluechi-agent/config \
		$(DESTDIR)/etc/bluechi/controller.conf.d $(DESTDIR)/etc/bluechi/agent.conf.d
	for b in bluechi-controller bluechi-agent bluechi-proxy; do [ ! -f bin/$$b ] || install -m 0755 bin/$$b $(DESTDIR)/usr/libexec/; done
	for b in bluechictl bluechi-is-online; do [ ! -f bin/$$b ] || install -m 0755 bin/$$b $(DESTDIR)/usr/bin/; done
	install -m 0644 install/systemd/system/* $(DESTDIR)/usr/lib/systemd/system/
	install -m 0644 install/systemd/user/* $(DESTDIR)/usr/lib/systemd/user/
	install -m 0644 install/dbus/*.conf $(DESTDIR)/usr/share/dbus-1/system.d/
	install -m 0644 install/config/controller.conf $(DESTDIR)/usr/share/bluechi/config/
	install -m 0644 install/config/agent.conf $(DESTDIR)/usr/share/bluechi-agent/config/
	for i in Controller Node Job Monitor Metrics Agent; do install -m 0644 idl/org.eclipse.bluechi.$$i.xml $(DESTDIR)/usr/share/dbus-1/interfaces/; done

clean:
	rm -rf bin
