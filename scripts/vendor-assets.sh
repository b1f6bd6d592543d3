#!/usr/bin/env bash
# Vendor the browser libraries into static/vendor/ from the npm registry.
#
# Why: a workshop room may have no internet, and nor do the tests, so the
# files are committed. Each package is pinned to one version and its tarball
# is checked against the sha512 integrity pinned here (from
# `npm view PKG@VER dist.integrity`) before anything is extracted.
# Idempotent: re-running rewrites the same files. Needs npm, node, tar.
set -euo pipefail
cd "$(dirname "$0")/.."
out=static/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# dir  package@version  integrity  files (paths inside the tarball's package/)
pins=(
  "htmx htmx.org@2.0.11 sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA== dist/htmx.min.js"
  "socket.io socket.io-client@4.8.4 sha512-7wjKAvVXYOJsbmUgkWbnhPD4bFpkqrUR0++XOjpGFmqDqsqV1CI93VTraeExLxpjxEqrWgFoSRZu1ihjLWfkAA== dist/socket.io.msgpack.min.js"
  "ansi_up ansi_up@6.0.6 sha512-yIa1x3Ecf8jWP4UWEunNjqNX6gzE4vg2gGz+xqRGY+TBSucnYp6RRdPV4brmtg6bQ1ljD48mZ5iGSEj7QEpRKA== ansi_up.js"
  "xterm @xterm/xterm@5.5.0 sha512-hqJHYaQb5OptNunnyAnkHyM8aCjZ1MEIDTQu1iIbbTD/xops91NB5yq1ZK/dC2JDbVWtF23zUtl9JE2NqwT87A== lib/xterm.js css/xterm.css"
  "xterm-addon-fit @xterm/addon-fit@0.10.0 sha512-UFYkDm4HUahf2lnEyHvio51TNGiLK66mqP2JoATy7hRZeXaGMRDr00JiSF7m63vR5WKATF605yEggJKsw0JpMQ== lib/addon-fit.js"
  "cytoscape cytoscape@3.35.0 sha512-sMvBIXiGMnhkCaWz2R06FwF/27MNlS+Tqvi17foO9UhnUg3XGZccKjxsvEqQFAQYMSSZmN5SxYzUYlQ0DOJJ3g== dist/cytoscape.min.js"
)

mkdir -p "$out"
versions="# name version integrity licence (written by scripts/vendor-assets.sh)"
for pin in "${pins[@]}"; do
  read -r dir spec want files <<<"$pin"
  tgz=$(npm pack --silent --pack-destination "$tmp" "$spec" | tail -n1)
  got="sha512-$(openssl dgst -sha512 -binary "$tmp/$tgz" | base64 -w0)"
  if [[ "$got" != "$want" ]]; then
    echo "vendor-assets: $spec: integrity mismatch: got $got, pinned $want" >&2
    exit 1
  fi
  x="$tmp/${tgz%.tgz}" && mkdir -p "$x" && tar -xzf "$tmp/$tgz" -C "$x"
  rm -rf "${out:?}/$dir" && mkdir -p "$out/$dir"
  for f in $files LICENSE; do cp "$x/package/$f" "$out/$dir/"; done
  licence=$(node -p "require('$x/package/package.json').license")
  versions+=$'\n'"${spec%@*} ${spec##*@} $want $licence"
done
printf '%s\n' "$versions" >"$out/VERSIONS.txt"

# ansi_up 6 ships only an ES module (one `export class AnsiUp`). Derive a
# classic-script copy that sets window.AnsiUp, so a plain <script> works too.
m="$out/ansi_up/ansi_up.js"
[[ $(grep -c '^export ' "$m") == 1 ]] || { echo "vendor-assets: $m: unexpected exports" >&2; exit 1; }
{
  echo "/* ansi_up.js as a classic script (sets window.AnsiUp); made by scripts/vendor-assets.sh */"
  echo "(function () {"
  sed 's/^export class AnsiUp/class AnsiUp/' "$m"
  echo "globalThis.AnsiUp = AnsiUp;"
  echo "})();"
} >"$out/ansi_up/ansi_up.global.js"

echo "vendored into $out:" && cat "$out/VERSIONS.txt"
