#!/bin/sh
# Unpacks Debian's nginx source package (with Debian's patches) into DEST,
# for the statically linked build.  `apt-get source` needs deb-src lines;
# when the machine has none, a deb-src twin of its deb sources is added.
#
# usage: nginx-source.sh DEST

set -eu

dest=$1
sudo=
[ "$(id -u)" = 0 ] || sudo=sudo

if [ -x "$dest/configure" ]; then
    exit 0
fi

have_deb_src() {
    apt-cache showsrc nginx 2>/dev/null | grep -q '^Version:'
}

if ! have_deb_src; then
    list=/etc/apt/sources.list.d/agentlocator-deb-src.sources
    echo "nginx-source: no deb-src entries; adding $list"
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        sed 's/^Types: deb$/Types: deb-src/' \
            /etc/apt/sources.list.d/debian.sources | $sudo tee "$list" >/dev/null
    else
        grep -h '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
            2>/dev/null | sed 's/^deb /deb-src /' \
            | $sudo tee "${list%.sources}.list" >/dev/null
    fi
    $sudo apt-get update -qq
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/nginx-source.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

# The newest version first; a mirror may lack one (seen: a security update
# whose .dsc is gone), so fall back to the next.
ok=no
for version in "" $(apt-cache showsrc nginx | awk '/^Version:/ {print $2}' \
                    | sort -rV | uniq)
do
    rm -rf ./*
    if [ -z "$version" ]; then
        spec=nginx
    else
        spec="nginx=$version"
    fi
    if apt-get source -qq "$spec" >apt-source.log 2>&1; then
        ok=yes
        break
    fi
    echo "nginx-source: apt-get source $spec failed; trying an older version"
done

if [ $ok = no ]; then
    cat apt-source.log
    echo "nginx-source: could not fetch Debian's nginx source" >&2
    exit 1
fi

src=$(find . -maxdepth 1 -type d -name 'nginx-*' | head -n 1)
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$src" "$dest"
echo "nginx-source: $(basename "$src") unpacked into $dest"
