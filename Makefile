# Build, generate and test the Go BlueChi implementation.
GO ?= go
GENERATED := gen internal/apitest/roundtrip_gen_test.go

.PHONY: all build generate check-generate test lint bench clean run deps

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

## test: all tests with the race detector
test:
	$(GO) test -race -count=1 ./...

## lint: gofmt and go vet
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "run gofmt -w"; exit 1; }
	$(GO) vet ./...

## bench: generated layer against plain godbus
bench:
	$(GO) test -run XXX -bench . -count 5 ./internal/apitest

clean:
	rm -rf bin
