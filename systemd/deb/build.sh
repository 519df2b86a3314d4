#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# build.sh ARCH VERSION DISTDIR builds the Debian packages fieldgate and
# fieldgate-tools for one architecture with nfpm, a Go tool pinned in
# tools/go.mod (a module of its own, so nothing is added to the daemon's
# go.mod). Once the module cache holds nfpm (make deb-tools, or any earlier
# build), no network is needed.
#
#   ARCH     Go architecture of the binaries: amd64, arm64 or arm (armv7,
#            Debian armhf)
#   VERSION  `git describe --tags --always --dirty`; made Debian-shaped here
#            (tag v0.1.0 -> 0.1.0, 3 commits later -> 0.1.0+3.gHASH)
#   DISTDIR  holds the binaries in DISTDIR/ARCH/ (`make cross`); the .deb
#            files are written to DISTDIR/
#
# Environment: NFPM (an nfpm command to use instead of the pinned tool),
# SOURCE_DATE_EPOCH (file times and changelog date; default: the last
# commit's time).
set -euo pipefail

if [ $# -ne 3 ]; then
	echo "usage: $0 ARCH VERSION DISTDIR" >&2
	exit 2
fi
arch=$1 version=$2 dist=$3
here=$(cd "$(dirname "$0")" && pwd)
systemd_dir=$(dirname "$here")
repo=$(dirname "$systemd_dir")
if [ -n "${NFPM:-}" ]; then
	nfpm=$NFPM
else
	# `go tool -n` builds the pinned nfpm for this machine (or finds it in the
	# build cache) and prints its path; a GOOS/GOARCH meant for the
	# binaries must not apply to it.
	nfpm=$(env -u GOOS -u GOARCH -u GOARM go -C "$here/tools" tool -n nfpm) || {
		echo "build.sh: cannot build nfpm from $here/tools/go.mod (run make deb-tools once with network)" >&2
		exit 1
	}
fi

# nfpm architecture (Go nomenclature, arm7 = armhf) and the ELF e_machine
# the binaries must have, so that a mixed-up dist/ never gets packaged.
case $arch in
amd64) nfpm_arch=amd64 deb_arch=amd64 machine=62 ;;
arm64) nfpm_arch=arm64 deb_arch=arm64 machine=183 ;;
arm | armhf) arch=arm nfpm_arch=arm7 deb_arch=armhf machine=40 ;;
*)
	echo "build.sh: unknown architecture $arch (want amd64, arm64 or arm)" >&2
	exit 2
	;;
esac

# deb_version turns `git describe` output into a Debian version that sorts
# the way the commits do: v1.2.3 -> 1.2.3, v1.2.3-4-gabc -> 1.2.3+4.gabc,
# v1.3.0-rc1 -> 1.3.0~rc1 (before 1.3.0), an untagged abc123 -> 0.0.0+gabc123,
# and -dirty -> .dirty/+dirty. A tag is told from a bare commit by its dots.
deb_version() {
	local v=${1#v} dirty=""
	if [[ $v == *-dirty ]]; then
		v=${v%-dirty} dirty=dirty
	fi
	if [[ $v =~ ^[0-9a-f]{7,40}$ || ! $v =~ ^[0-9] ]]; then
		v="0.0.0+g$v" # no tag yet: describe gave an abbreviated commit
	elif [[ $v =~ ^(.*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
		v="${BASH_REMATCH[1]//-/\~}+${BASH_REMATCH[2]}.g${BASH_REMATCH[3]}"
	else
		v=${v//-/\~}
	fi
	if [ -n "$dirty" ]; then
		if [[ $v == *+* ]]; then v="$v.$dirty"; else v="$v+$dirty"; fi
	fi
	printf '%s\n' "$v"
}
debver=$(deb_version "$version")
if command -v dpkg >/dev/null && ! dpkg --validate-version "$debver" 2>/dev/null; then
	echo "build.sh: $version gives the invalid Debian version $debver" >&2
	exit 1
fi

bindir=$dist/$arch
for b in fieldgated fieldgatectl fieldgate-repo fieldgate-sim; do
	f=$bindir/$b
	if [ ! -f "$f" ]; then
		echo "build.sh: $f is missing (run make cross first)" >&2
		exit 1
	fi
	m=$(od -An -tu2 -j18 -N2 "$f" | tr -d ' ')
	if [ "$m" != "$machine" ]; then
		echo "build.sh: $f is not a linux/$arch binary (ELF machine $m, want $machine)" >&2
		exit 1
	fi
done

# Every binary is static (CGO_ENABLED=0) but fieldgate-repo for amd64 and
# arm64, built with cgo for PKCS#11 (make fieldgate-repo-pkcs11) and so
# linked against glibc: fieldgate-tools then depends on a libc6 that has
# every symbol version the binary asks for.
dynamic() { readelf --program-headers --wide "$1" | grep -q 'Requesting program interpreter'; }
for b in fieldgated fieldgatectl fieldgate-repo fieldgate-sim; do
	want=static
	if [ "$b" = fieldgate-repo ] && [ "$arch" != arm ]; then want=dynamic; fi
	have=static
	if dynamic "$bindir/$b"; then have=dynamic; fi
	if [ "$have" != "$want" ]; then
		echo "build.sh: $bindir/$b is linked $have, want $want (make cross builds fieldgate-repo with cgo for amd64 and arm64, everything else without)" >&2
		exit 1
	fi
done
tools_depends=""
if [ "$arch" != arm ]; then
	glibc=$(readelf --version-info --wide "$bindir/fieldgate-repo" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -uV | tail -1)
	if [ -z "$glibc" ]; then
		echo "build.sh: $bindir/fieldgate-repo asks for no GLIBC symbol version" >&2
		exit 1
	fi
	tools_depends="libc6 (>= $glibc)"
fi

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || echo 0)
fi
export SOURCE_DATE_EPOCH

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/bin"
cp "$bindir"/fieldgated "$bindir"/fieldgatectl "$bindir"/fieldgate-repo "$bindir"/fieldgate-sim "$stage/bin/"
cp "$systemd_dir"/fieldgated.service "$systemd_dir"/fieldgate.sysusers.conf \
	"$systemd_dir"/fieldgate.tmpfiles.conf "$systemd_dir"/fieldgate-gpio.rules \
	"$systemd_dir"/fieldgate-repo-timestamp@.service "$systemd_dir"/fieldgate-repo-timestamp@.timer "$stage/"
cp "$repo/daemon/config/example.yaml" "$stage/fieldgated.yaml.example"
cp "$here"/fieldgate.yaml "$here"/fieldgate-tools.yaml "$here"/postinst "$here"/prerm "$here"/postrm \
	"$here"/*.lintian-overrides "$stage/"
mkdir "$stage/man"
for m in fieldgated.8 fieldgated.yaml.5 fieldgatectl.1 fieldgate-repo.1 fieldgate-sim.1; do
	if [ ! -f "$here/man/$m" ]; then
		echo "build.sh: $here/man/$m is missing" >&2
		exit 1
	fi
done
for m in "$here"/man/*.[158]; do
	gzip -9n <"$m" >"$stage/man/$(basename "$m").gz"
done

# The copyright years are those of the repository's first and last commit.
last_year=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)
first_year=$(git -C "$repo" log --max-parents=0 --format=%cd --date=format:%Y 2>/dev/null | tail -1 || true)
years=${first_year:-$last_year}
if [ "$years" != "$last_year" ]; then years="$years-$last_year"; fi
# The linked Go modules' paragraphs (copyright lines, licence texts,
# notices) are written from their sources in the module cache by the
# repository's TestDebianCopyright, which also checks their licences.
if ! (env -u GOOS -u GOARCH -u GOARM FIELDGATE_COPYRIGHT_OUT="$stage/modules.copyright" \
	go -C "$repo" test -count=1 -run '^TestDebianCopyright$' . >"$stage/copyright.log" 2>&1); then
	cat "$stage/copyright.log" >&2
	echo "build.sh: cannot write the modules' copyright paragraphs" >&2
	exit 1
fi
sed -e "s/@YEARS@/$years/" -e "/^@MODULES@\$/{r $stage/modules.copyright" -e "d}" "$here/copyright" >"$stage/copyright"
if grep -q '@[A-Z]*@' "$stage/copyright"; then
	echo "build.sh: placeholders left in the copyright file" >&2
	exit 1
fi

# A one-entry changelog: the packages are built from the repository, whose
# history is the real change log.
{
	printf 'fieldgate (%s) unstable; urgency=medium\n\n' "$debver"
	printf '  * Built from fieldgate %s.\n\n' "$version"
	printf ' -- fieldgate maintainers <maintainers@fieldgate.dev>  %s\n' \
		"$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$stage/changelog.gz"

# The package paths go to stdout, one a line; everything else to stderr.
abs_dist=$(cd "$dist" && pwd)
for pkg in fieldgate fieldgate-tools; do
	deb=$abs_dist/${pkg}_${debver}_${deb_arch}.deb
	(
		cd "$stage"
		FIELDGATE_DEB_ARCH=$nfpm_arch FIELDGATE_DEB_VERSION=$debver FIELDGATE_TOOLS_DEPENDS=$tools_depends \
			$nfpm package --config "$pkg.yaml" --packager deb --target "$deb" >&2
	)
	if [ "$(dpkg-deb -f "$deb" Architecture 2>/dev/null || echo "$deb_arch")" != "$deb_arch" ]; then
		echo "build.sh: $deb is not for $deb_arch" >&2
		exit 1
	fi
	echo "$deb"
done
