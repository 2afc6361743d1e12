# Build, generate and test the Go BlueChi implementation.
GO ?= go
GENERATED := gen internal/daemonapi internal/apitest/roundtrip_gen_test.go

.PHONY: all build generate check-generate test lint bench bench-cluster clean run deps install

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
## position-independent executable (as distributions build it)
test:
	$(GO) test -race -count=1 ./...
	$(GO) test -count=1 -buildmode=pie ./internal/memtrim

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
