#!/usr/bin/env bash
# Regenerates crates/simfmt/src/generated.rs from schema/schema.fbs with the planus CLI.
#
#   schema/regen.sh          rewrite src/generated.rs
#   schema/regen.sh --check  exit 1 if src/generated.rs is not what the schema generates
#
# planus 1.3 rejects `(deprecated)` on enum values, union members and tables, which the TFLite
# schema uses in three places (REDUCE_WINDOW, ReduceWindowOptions twice). They are stripped from
# a temporary copy; the vendored schema.fbs stays byte-identical to upstream. Field-level
# `(deprecated)` attributes are understood by planus and kept.
#
# Install the generator with: cargo install planus-cli --version 1.3.0 --locked
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
crate="$(dirname "$here")"
planus="${PLANUS:-$(command -v planus || echo "$HOME/.cargo/bin/planus")}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
sed -E \
    -e 's/^(\s*REDUCE_WINDOW = 205) \(deprecated\),/\1,/' \
    -e 's/^(\s*ReduceWindowOptions) \(deprecated\),/\1,/' \
    -e 's/^table ReduceWindowOptions \(deprecated\) \{/table ReduceWindowOptions {/' \
    "$here/schema.fbs" > "$tmp/schema.fbs"
if grep -nE '\(deprecated\)\s*[,{]' "$tmp/schema.fbs"; then
    echo "regen.sh: unexpected (deprecated) attributes left; update the sed expressions" >&2
    exit 2
fi
(cd "$tmp" && "$planus" rust schema.fbs -o generated.rs)
if [[ "${1:-}" == "--check" ]]; then
    if ! cmp -s "$tmp/generated.rs" "$crate/src/generated.rs"; then
        echo "src/generated.rs is out of date: run crates/simfmt/schema/regen.sh" >&2
        exit 1
    fi
    echo "src/generated.rs is up to date"
else
    cp "$tmp/generated.rs" "$crate/src/generated.rs"
    echo "wrote $crate/src/generated.rs"
fi
