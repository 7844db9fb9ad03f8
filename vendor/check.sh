#!/usr/bin/env bash
# Fails when vendor/pingora-core differs from pingora-core 0.9.1 as published on crates.io
# plus vendor/pingora-core.patch, without its examples and benches. Needs the original .crate in cargo's cache (any build of a
# checkout without the [patch] fetches it); exits 2 when it is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=pingora-core-0.9.1
sha=a535f47f65fdcb003f9e1df04cd18e614c128dfe9388acce3f211ae38ac14d68
crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$name.crate" 2>/dev/null | head -n1 || true)
if [ -z "$crate" ]; then
    echo "check.sh: $name.crate not in cargo's cache; cannot check the vendored tree" >&2
    exit 2
fi
echo "$sha  $crate" | sha256sum --check --quiet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$crate" -C "$tmp"
rm -f "$tmp/$name/.cargo-ok"
# Not kept: the examples (they carry example TLS private keys) and benches; only the library
# is built from this tree.
rm -rf "$tmp/$name/examples" "$tmp/$name/benches"
(cd "$tmp/$name" && patch --quiet -p1 < "$here/pingora-core.patch")
diff -r "$tmp/$name" "$here/pingora-core"
echo "vendor/pingora-core = $name + pingora-core.patch"
