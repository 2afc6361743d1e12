#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make check-install: what a distribution package of `make install` ships.
# Installs into a scratch folder with every directory variable moved there
# (LIBEXECDIR one level deeper, as packages that keep helpers in
# /usr/libexec/PACKAGE do) and a VERSION set, then checks:
#   - every command of cmd/ is installed, mode 0755, reports VERSION, and has
#     a man page; every other file is 0644 and nothing is group or world
#     writable;
#   - systemd-analyze verify accepts every unit (system and user, templates
#     with an instance), so each binary a unit names exists, and the units'
#     Documentation= man pages are the installed ones (it runs man: Debian
#     man-db);
#   - the D-Bus policies are well-formed XML (xmllint, Debian libxml2-utils)
#     and installed where dbus-daemon reads them;
#   - the installed daemons read the installed configuration (DATADIR and
#     SYSCONFDIR are built in);
#   - a second install succeeds and changes nothing;
#   - uninstall leaves no file behind.
set -eu

make=${MAKE:-make}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
version=0.0.0-check-install
fail() {
	echo "check-install: $*" >&2
	exit 1
}
vars="BUILDDIR=$work/bin VERSION=$version PREFIX=$root/usr SYSCONFDIR=$root/etc LIBEXECDIR=$root/usr/libexec/bluechi"

# shellcheck disable=SC2086 # vars is a list of words
$make --no-print-directory install $vars >"$work/log" 2>&1 || {
	cat "$work/log"
	fail "make install failed"
}
listing() { (cd "$root" && find . -printf '%M %s %p\n' | sort); }
listing >"$work/first"
# shellcheck disable=SC2086
$make --no-print-directory install $vars >"$work/log" 2>&1 || {
	cat "$work/log"
	fail "a second make install failed"
}
listing | diff "$work/first" - || fail "a second make install changed the tree"

for dir in cmd/*/; do
	name=$(basename "$dir")
	bin=
	for d in "$root/usr/bin" "$root/usr/libexec/bluechi"; do
		[ -e "$d/$name" ] && bin=$d/$name
	done
	[ -n "$bin" ] || fail "cmd/$name is not installed (BINDIR or LIBEXECDIR)"
	[ "$(stat -c %a "$bin")" = 755 ] || fail "$bin: mode $(stat -c %a "$bin"), want 755"
	out=$("$bin" --version 2>&1) || fail "$bin --version: $out"
	[ "$out" = "$name version $version" ] || fail "$bin --version printed \"$out\", want \"$name version $version\""
	ls "$root/usr/share/man/man1/$name.1" "$root/usr/share/man/man8/$name.8" 2>/dev/null | grep -q . ||
		fail "cmd/$name has no installed man page"
done

bad=$(find "$root" -perm /022 ! -type l)
[ -z "$bad" ] || fail "group or world writable: $bad"
bad=$(find "$root" -type f ! -path "$root/usr/bin/*" ! -path "$root/usr/libexec/*" ! -perm 0644)
[ -z "$bad" ] || fail "data files not 0644: $bad"

# Templates get an instance of a unit of the check's own, verifytarget,
# for the dependency units' BindsTo=%i.service.
verify() { # verify SCOPE DIR
	scope=$1
	v=$work/verify-$scope
	mkdir -p "$v"
	cp "$2"/* "$v"/
	printf '[Service]\nExecStart=/bin/true\n' >"$v/verifytarget.service"
	for u in "$2"/*; do
		name=$(basename "$u")
		case $name in
		*@.*) ln -s "$name" "$v/${name%%@.*}@verifytarget.${name#*@.}" && name=${name%%@.*}@verifytarget.${name#*@.} ;;
		esac
		out=$(cd "$v" && MANPATH=$root/usr/share/man XDG_RUNTIME_DIR=$work systemd-analyze --"$scope" verify --man=yes "./$name" 2>&1) ||
			fail "systemd-analyze --$scope verify $name: $out"
		[ -z "$out" ] || fail "systemd-analyze --$scope verify $name: $out"
	done
}
verify system "$root/usr/lib/systemd/system"
verify user "$root/usr/lib/systemd/user"

# DATADIR is not /usr/share here, so the policies go where dbus-daemon
# looks besides it: SYSCONFDIR/dbus-1/system.d.
policies=$(find "$root/etc/dbus-1/system.d" -name '*.conf' 2>/dev/null)
[ -n "$policies" ] || fail "no D-Bus policy in $root/etc/dbus-1/system.d"
for f in $policies; do
	xmllint --noout --nonet "$f" || fail "$f is not well-formed XML"
done

# The installed daemons read the configuration where make install put it,
# under DATADIR (the distribution file) and SYSCONFDIR (drop-ins): a bad
# line in either must be reported with its path.
broken() { # broken DAEMON FILE: DAEMON fails on a bad line in FILE
	out=$(timeout 10 "$root/usr/libexec/bluechi/$1" 2>&1) && fail "$1 started with a broken $2"
	case $out in
	*"$2"*) ;;
	*) fail "$1 did not read $2: $out" ;;
	esac
}
for d in bluechi-controller:bluechi/config/controller.conf:controller bluechi-agent:bluechi-agent/config/agent.conf:agent; do
	name=${d%%:*}
	rest=${d#*:}
	conf=$root/usr/share/${rest%%:*}
	cp "$conf" "$work/conf.orig"
	echo "[not a section" >>"$conf"
	broken "$name" "$conf"
	cp "$work/conf.orig" "$conf"
	dropin=$root/etc/bluechi/${rest#*:}.conf.d/check.conf
	echo "[not a section" >"$dropin"
	broken "$name" "$dropin"
	rm "$dropin"
done

# shellcheck disable=SC2086
$make --no-print-directory uninstall $vars >"$work/log" 2>&1 || {
	cat "$work/log"
	fail "make uninstall failed"
}
left=$(find "$root" ! -type d)
[ -z "$left" ] || fail "left after make uninstall: $left"
echo "check-install: ok"
