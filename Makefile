# SPDX-License-Identifier: Apache-2.0
# Build, generate and test the Go BlueChi implementation.
GO ?= go
GENERATED := gen internal/daemonapi internal/busnames internal/apitest/roundtrip_gen_test.go doc/man install/completion
# Man pages: written in Markdown (doc/man/NAME.SECTION.md), converted to roff
# by go-md2man (a tool dependency in go.mod) and committed, so that make
# install needs neither the converter nor the network.
MAN_SOURCES := $(wildcard doc/man/*.md)
MAN_PAGES := $(MAN_SOURCES:.md=)

.PHONY: all build generate man check-man check-generate test fuzz-smoke lint check-spdx check-install bench bench-cluster bench-scale bench-tls bench-compare clean run deps install uninstall check-units

all: build

## build: compile every command in cmd/ into bin/ (BUILDDIR). For packages:
## VERSION=1.3.0-go.1 sets what the binaries' --version prints (default: the
## one in internal/version, no git needed), GOBUILDFLAGS replaces -trimpath
## (e.g. "-trimpath -buildmode=pie"), GOLDFLAGS adds linker flags and
## CGO_ENABLED=1 builds with cgo.
VERSION ?=
GOBUILDFLAGS ?= -trimpath
GOLDFLAGS ?=
CGO_ENABLED ?= 0
BUILDDIR ?= bin
# The daemons read their configuration under DATADIR and SYSCONFDIR (below):
# a build for other folders than upstream's /usr/share and /etc has them
# written into internal/config.
CONFIGPKG = github.com/bluechi-go/bluechi/internal/config
ALL_LDFLAGS = $(strip $(GOLDFLAGS) $(if $(VERSION),-X github.com/bluechi-go/bluechi/internal/version.Version=$(VERSION)) \
	$(if $(filter-out /usr/share,$(DATADIR)),-X $(CONFIGPKG).DataDir=$(DATADIR)) \
	$(if $(filter-out /etc,$(SYSCONFDIR)),-X $(CONFIGPKG).SysconfDir=$(SYSCONFDIR)))
build:
	@mkdir -p $(BUILDDIR)
	CGO_ENABLED=$(CGO_ENABLED) $(GO) build $(GOBUILDFLAGS) $(if $(ALL_LDFLAGS),-ldflags '$(ALL_LDFLAGS)') -o $(BUILDDIR)/ ./cmd/...

## deps: install the Debian packages the daemons and tests need (as root)
deps:
	@command -v dbus-daemon >/dev/null && command -v systemd >/dev/null && command -v busctl >/dev/null && command -v nsenter >/dev/null || \
		{ echo "installing dbus-daemon systemd util-linux python3-dasbus"; apt-get update -qq && apt-get install -y -qq --no-install-recommends dbus dbus-daemon systemd util-linux python3-dasbus; }

## run: a local cluster of 3 nodes (real systemd --user each) until Ctrl-C;
## TLS=1 runs the agent link over mutual TLS with certificates made for it
run: deps build
	$(GO) run ./tools/localcluster -n 3 -bin bin $(if $(TLS),-tls)

## generate: regenerate gen/ and the generated tests from idl/, the man
## pages and the shell completion
generate: man
	$(GO) generate ./...
	@mkdir -p install/completion
	$(GO) run ./cmd/bluechictl completion bash > install/completion/bluechictl.bash
	$(GO) run ./cmd/bluechictl completion fish > install/completion/bluechictl.fish

## man: convert the man pages' Markdown to roff (always, so that
## check-generate sees a stale page whatever the files' times)
man:
	@for m in $(MAN_PAGES); do $(GO) tool go-md2man -in $$m.md -out $$m || exit 1; done

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
	internal/unitname:FuzzCheck internal/wire:FuzzCopy internal/wire:FuzzParse \
	internal/daemonapi:FuzzWireDecodeListUnits internal/daemonapi:FuzzWireDecodeEnableUnitFiles
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

## lint: gofmt, go vet, man pages (groff -man -ww), the units' exposure and
## what make install installs
lint: check-spdx check-man check-units check-install
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "run gofmt -w"; exit 1; }
	$(GO) vet ./...

## check-spdx: every tracked Go, shell, make and unit file names its license
## in an SPDX line among its first 5 lines
SPDX_FILES = git ls-files '*.go' '*.sh' Makefile '*/Makefile' '*.mk' .ci/run '*.service' '*.socket' '*.timer' '*.path'
check-spdx:
	@missing=$$(for f in $$($(SPDX_FILES)); do head -n 5 "$$f" | grep -q 'SPDX-License-Identifier: ' || echo "$$f"; done); \
		test -z "$$missing" || { echo "$$missing"; echo "files without an SPDX-License-Identifier line (see LICENSE)"; exit 1; }

## bench: generated layer against plain godbus
bench:
	$(GO) test -run XXX -bench . -count 5 ./internal/apitest

## bench-cluster: benchmarks on sandboxed clusters with real systemd (root),
## and bluechi-exporter's (RSS, scrape latency, CPU per unit event)
bench-cluster:
	$(GO) test -run XXX -bench 'StartUnit|ListUnits' -benchtime 300x ./internal/cluster
	$(GO) test -run XXX -bench Memory -benchtime 1000x ./internal/cluster
	$(GO) test -run XXX -bench MonitorStorm -benchtime 1x ./internal/e2e
	$(GO) test -run XXX -bench . -benchtime 20x ./internal/exporter

## bench-compare: BASE=<rev> against this working tree, the figures of
## issue 13 side by side (alternating runs, medians, targets) as a Markdown
## table (root; about 15 minutes on 2 cores); ROUNDS=3, ONLY=storm,memory
## pick rounds and groups
BASE ?=
ROUNDS ?= 3
ONLY ?=
bench-compare:
	@test -n "$(BASE)" || { echo "usage: make bench-compare BASE=<rev>"; exit 2; }
	$(GO) run ./tools/benchcompare -base $(BASE) -rounds $(ROUNDS) $(if $(ONLY),-only $(ONLY))

## bench-scale: the real controller with 10 to 2000 simulated agents over
## TCP (memory per node, idle CPU, API latency, 10% offline), printed as a
## table; BLUECHI_SCALE_BASE=<tree or binary> measures another controller
## alternating with this one (before/after in one run)
bench-scale:
	$(GO) test -run XXX -bench 'Scale|GodbusListNodes|BusRelay' -benchtime 300x -timeout 90m ./internal/scalebench
	$(GO) test -run XXX -bench 'ListNodes1000|GetNode1000|ConfiguredNodeHeap' -benchtime 200x ./internal/controller
	$(MAKE) bench-tls

## bench-tls: registration storms of 100 and 1000 simulated agents, plain
## and mutual TLS alternating (3 rounds; about 3 minutes): time until all
## online, Register latency, the controller's CPU per registration and
## RssAnon per registered node, printed as a table (root);
## BLUECHI_TLS_ROUNDS and BLUECHI_TLS_SIZES pick others
bench-tls:
	$(GO) test -run XXX -bench TLSRegistration -benchtime 1x -timeout 30m ./internal/scalebench

DESTDIR ?=
PREFIX ?= /usr
BINDIR ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec
DATADIR ?= $(PREFIX)/share
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
USERUNITDIR ?= $(PREFIX)/lib/systemd/user
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
# dbus-daemon reads system bus policies from /usr/share/dbus-1/system.d and
# /etc/dbus-1/system.d only: with another DATADIR (PREFIX=/usr/local, say)
# the policy goes under SYSCONFDIR.
DBUSPOLICYDIR ?= $(if $(filter /usr/share,$(DATADIR)),$(DATADIR),$(SYSCONFDIR))/dbus-1/system.d
DBUSINTERFACESDIR ?= $(DATADIR)/dbus-1/interfaces
MANDIR ?= $(DATADIR)/man
BASHCOMPLETIONDIR ?= $(DATADIR)/bash-completion/completions
FISHCOMPLETIONDIR ?= $(DATADIR)/fish/vendor_completions.d
# Where the daemons read their distribution defaults (internal/config):
# derived from DATADIR, not settable on their own.
CONTROLLERDATADIR = $(DATADIR)/bluechi/config
AGENTDATADIR = $(DATADIR)/bluechi-agent/config
GRAFANADIR ?= $(DATADIR)/bluechi/grafana

DAEMONS := bluechi-controller bluechi-agent bluechi-proxy bluechi-exporter
TOOLS := bluechictl bluechi-is-online
SYSTEM_UNITS := $(notdir $(wildcard install/systemd/system/*))
USER_UNITS := $(notdir $(wildcard install/systemd/user/*))
DBUS_POLICIES := $(notdir $(wildcard install/dbus/*.conf))
SYSUSERS := $(notdir $(wildcard install/sysusers/*.conf))
INTERFACES := Controller Node Job Monitor Metrics Agent
# Unit files name the binaries as @LIBEXECDIR@/... or /usr/libexec/...:
# both become the installed LIBEXECDIR. /usr/libexec/ is turned into the
# placeholder first, so that a LIBEXECDIR that itself contains /usr/libexec/
# (/usr/libexec/bluechi, say) is not substituted twice.
SUBST_UNIT = sed -e 's|/usr/libexec/|@LIBEXECDIR@/|g' -e 's|@LIBEXECDIR@|$(LIBEXECDIR)|g'

## install: binaries, units, sysusers entry, D-Bus policy, default configs
## under DESTDIR (no network: everything installed is built or committed).
## A package runs systemd-sysusers (creating the user bluechi) and reloads
## dbus and systemd after it.
install: build
	$(if $(filter /usr/share/dbus-1/system.d /etc/dbus-1/system.d,$(DBUSPOLICYDIR)),,@echo "warning: DBUSPOLICYDIR $(DBUSPOLICYDIR) is not a folder dbus-daemon reads (/usr/share/dbus-1/system.d, /etc/dbus-1/system.d)" >&2)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(USERUNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(DBUSPOLICYDIR) $(DESTDIR)$(DBUSINTERFACESDIR) \
		$(DESTDIR)$(CONTROLLERDATADIR) $(DESTDIR)$(AGENTDATADIR) \
		$(DESTDIR)$(SYSCONFDIR)/bluechi/controller.conf.d $(DESTDIR)$(SYSCONFDIR)/bluechi/agent.conf.d
	for b in $(DAEMONS); do install -m 0755 $(BUILDDIR)/$$b $(DESTDIR)$(LIBEXECDIR)/; done
	for b in $(TOOLS); do install -m 0755 $(BUILDDIR)/$$b $(DESTDIR)$(BINDIR)/; done
	for u in $(SYSTEM_UNITS); do $(SUBST_UNIT) install/systemd/system/$$u > $(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u; done
	for u in $(USER_UNITS); do $(SUBST_UNIT) install/systemd/user/$$u > $(DESTDIR)$(USERUNITDIR)/$$u && chmod 0644 $(DESTDIR)$(USERUNITDIR)/$$u; done
	install -m 0644 $(addprefix install/sysusers/,$(SYSUSERS)) $(DESTDIR)$(SYSUSERSDIR)/
	install -D -m 0644 install/grafana/bluechi-fleet.json $(DESTDIR)$(GRAFANADIR)/bluechi-fleet.json
	install -m 0644 $(addprefix install/dbus/,$(DBUS_POLICIES)) $(DESTDIR)$(DBUSPOLICYDIR)/
	install -m 0644 install/config/controller.conf $(DESTDIR)$(CONTROLLERDATADIR)/
	install -m 0644 install/config/agent.conf $(DESTDIR)$(AGENTDATADIR)/
	for i in $(INTERFACES); do install -m 0644 idl/org.eclipse.bluechi.$$i.xml $(DESTDIR)$(DBUSINTERFACESDIR)/; done
	for m in $(MAN_PAGES); do s=$${m##*.}; install -d $(DESTDIR)$(MANDIR)/man$$s && install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/; done
	install -D -m 0644 install/completion/bluechictl.bash $(DESTDIR)$(BASHCOMPLETIONDIR)/bluechictl
	install -D -m 0644 install/completion/bluechictl.fish $(DESTDIR)$(FISHCOMPLETIONDIR)/bluechictl.fish

## uninstall: remove what install installed (configuration in SYSCONFDIR is kept)
uninstall:
	rm -f $(addprefix $(DESTDIR)$(LIBEXECDIR)/,$(DAEMONS)) $(addprefix $(DESTDIR)$(BINDIR)/,$(TOOLS))
	rm -f $(addprefix $(DESTDIR)$(UNITDIR)/,$(SYSTEM_UNITS)) $(addprefix $(DESTDIR)$(USERUNITDIR)/,$(USER_UNITS))
	rm -f $(DESTDIR)$(GRAFANADIR)/bluechi-fleet.json $(addprefix $(DESTDIR)$(SYSUSERSDIR)/,$(SYSUSERS)) $(addprefix $(DESTDIR)$(DBUSPOLICYDIR)/,$(DBUS_POLICIES))
	rm -f $(DESTDIR)$(CONTROLLERDATADIR)/controller.conf $(DESTDIR)$(AGENTDATADIR)/agent.conf
	rm -f $(foreach i,$(INTERFACES),$(DESTDIR)$(DBUSINTERFACESDIR)/org.eclipse.bluechi.$(i).xml)
	for m in $(notdir $(MAN_PAGES)); do rm -f $(DESTDIR)$(MANDIR)/man$${m##*.}/$$m; done
	rm -f $(DESTDIR)$(BASHCOMPLETIONDIR)/bluechictl $(DESTDIR)$(FISHCOMPLETIONDIR)/bluechictl.fish
	-rmdir $(DESTDIR)$(CONTROLLERDATADIR) $(DESTDIR)$(GRAFANADIR) $(DESTDIR)$(DATADIR)/bluechi $(DESTDIR)$(AGENTDATADIR) $(DESTDIR)$(DATADIR)/bluechi-agent 2>/dev/null

## check-man: the man pages have no groff warnings (Debian package groff-base)
check-man:
	@for m in $(MAN_PAGES); do out=$$(LC_ALL=C.UTF-8 groff -man -ww -z $$m 2>&1); \
		test -z "$$out" || { echo "$$m: $$out"; exit 1; }; done

## check-units: the installed units' systemd-analyze security exposure is
## at most 3.0 (controller) and 5.0 (agent)
check-units:
	systemd-analyze security --offline=true --threshold=30 install/systemd/system/bluechi-controller.service
	systemd-analyze security --offline=true --threshold=50 install/systemd/system/bluechi-agent.service

## check-install: make install into a scratch folder with other directories
## and a VERSION: every command installed and reporting it, file modes,
## systemd-analyze verify of every unit, the D-Bus policies' XML (Debian
## package libxml2-utils), a rerun changing nothing, make uninstall
## removing everything (tools/check-install.sh)
check-install:
	MAKE='$(MAKE)' sh tools/check-install.sh

clean:
	rm -rf $(BUILDDIR)
