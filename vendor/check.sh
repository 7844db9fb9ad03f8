#!/usr/bin/env bash
# Fails when a vendored pingora crate differs from the same crate as published on crates.io
# plus its patch (vendor/<crate>.patch), without its examples and benches. Needs the original
# .crate files in cargo's cache (any build of a checkout without the [patch] fetches them);
# exits 2 when one is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# crate, version, sha256 of the published .crate (as Cargo.lock recorded it before the patch)
crates=(
    "pingora-core 0.9.1 a535f47f65fdcb003f9e1df04cd18e614c128dfe9388acce3f211ae38ac14d68"
    "pingora-proxy 0.9.1 8e3d5670490740405ecc8c6f75c3fcbce4d24f7adaffb355ca44550e7918e358"
)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for entry in "${crates[@]}"; do
    read -r crate version sha <<<"$entry"
    name=$crate-$version
    file=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$name.crate" 2>/dev/null | head -n1 || true)
    if [ -z "$file" ]; then
        echo "check.sh: $name.crate not in cargo's cache; cannot check vendor/$crate" >&2
        exit 2
    fi
    echo "$sha  $file" | sha256sum --check --quiet
    tar -xzf "$file" -C "$tmp"
    rm -f "$tmp/$name/.cargo-ok"
    # Not kept: the examples (pingora-core's carry example TLS private keys) and benches;
    # only the library is built from these trees.
    rm -rf "$tmp/$name/examples" "$tmp/$name/benches"
    (cd "$tmp/$name" && patch --quiet -p1 < "$here/$crate.patch")
    diff -r "$tmp/$name" "$here/$crate"
    echo "vendor/$crate = $name + $crate.patch"
done
