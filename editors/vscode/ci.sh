#!/usr/bin/env bash
# Builds and checks the VS Code extension: installs the npm dependencies from the lock file, runs
# the grammar tests and the extension's unit tests, packages the .vsix (with its runtime
# dependencies, never prompting), and checks what the .vsix contains and that it loads on its own.
#
#   bash editors/vscode/ci.sh        # from anywhere; needs Node 20+ and npm
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

step() { printf '\n==> %s\n' "$*"; }

step "node $(node --version), npm $(npm --version), in $(pwd)"

if [[ -f package-lock.json ]]; then
  step "npm ci (from package-lock.json)"
  npm ci --no-audit --no-fund
else
  step "npm install (no package-lock.json)"
  npm install --no-audit --no-fund
fi

step "npm test (grammar tests, then extension unit tests)"
npm test

name=$(node -p 'require("./package.json").name')
version=$(node -p 'require("./package.json").version')
vsix="$name-$version.vsix"
step "vsce package -> $vsix"
rm -f "$vsix"
# Standard input is closed so that a question from vsce fails the build instead of waiting.
# The project has no public repository URL yet: say so rather than invent one.
npx --no -- vsce package --allow-missing-repository --out "$vsix" </dev/null

step "checking the contents of $vsix"
if command -v unzip >/dev/null 2>&1; then
  listing=$(unzip -Z1 "$vsix")
else
  listing=$(python3 -c 'import sys, zipfile; print("\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))' "$vsix")
fi
missing=0
for required in \
  extension/package.json \
  extension/extension.js \
  extension/language-configuration.json \
  extension/syntaxes/chainr.tmLanguage.json \
  extension/LICENSE.txt \
  extension/node_modules/vscode-languageclient/package.json \
  extension/node_modules/vscode-languageclient/node.js \
  extension/node_modules/vscode-languageserver-protocol/package.json \
  extension/node_modules/vscode-jsonrpc/package.json; do
  if grep -qxF "$required" <<<"$listing"; then
    echo "  ok      $required"
  else
    echo "  MISSING $required" >&2
    missing=1
  fi
done
for forbidden in extension/tests/ extension/ci.sh extension/node_modules/@vscode/vsce/ \
  extension/node_modules/vscode-tmgrammar-test/; do
  if grep -q "^$forbidden" <<<"$listing"; then
    echo "  UNWANTED $forbidden" >&2
    missing=1
  fi
done
if [[ $missing -ne 0 ]]; then
  echo "error: $vsix does not contain what it should (see above)" >&2
  exit 1
fi
echo "  $(grep -c . <<<"$listing") files, $(wc -c <"$vsix" | tr -d ' ') bytes"

step "loading the unpacked extension with only its packaged dependencies"
unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT
if command -v unzip >/dev/null 2>&1; then
  unzip -q "$vsix" -d "$unpacked"
else
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$vsix" "$unpacked"
fi
node tests/load-packaged.js "$unpacked/extension/extension.js"

step "done: $(pwd)/$vsix"
