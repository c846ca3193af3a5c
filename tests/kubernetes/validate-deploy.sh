#!/usr/bin/env bash
# The deployment manifests (deploy/): deploy/base and every overlay in deploy/overlays, rendered
# with `kubectl kustomize`, each document validated by kubernetes-validate (the official schemas,
# strict) for the Kubernetes version chainr targets, then the properties no schema can check
# (deploy_checks.py: non-root containers, Redis's persistence, the server's flags, the Ingress).
# Needs kubectl 1.27 or newer (its built-in kustomize v5) and kubernetes-validate, which
# test.sh installs. Usage: validate-deploy.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
version=1.33.0

if ! command -v kubectl >/dev/null 2>&1; then
  echo "error: kubectl is not installed (it renders deploy/ with its built-in kustomize)" >&2
  exit 1
fi
kustomize=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v//p')
case "$kustomize" in
  [5-9].* | [1-9][0-9]*.*) ;;
  *)
    echo "error: kubectl's kustomize is ${kustomize:-unknown}; deploy/ needs kustomize v5 (kubectl 1.27 or newer)" >&2
    exit 1
    ;;
esac
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "error: kubernetes-validate is not installed:" \
    "python3 -m pip install kubernetes-validate==$(cat tests/kubernetes/kubernetes-validate.version)" >&2
  exit 1
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
rendered=()
for dir in deploy/base deploy/overlays/*/; do
  dir=${dir%/}
  name=$(basename "$dir")
  # A warning (a deprecated field, say) fails the check as an error does.
  if ! kubectl kustomize "$dir" >"$out/$name.yaml" 2>"$out/$name.err" || [ -s "$out/$name.err" ]; then
    echo "error: kubectl kustomize $dir:" >&2
    cat "$out/$name.err" >&2
    exit 1
  fi
  # kubernetes-validate passes an empty file: make sure there is something to validate.
  if ! grep -q '^kind: ' "$out/$name.yaml"; then
    echo "error: kubectl kustomize $dir rendered nothing" >&2
    exit 1
  fi
  kubernetes-validate --strict --quiet -k "$version" "$out/$name.yaml"
  rendered+=("$name=$out/$name.yaml")
done
python3 tests/kubernetes/deploy_checks.py "${rendered[@]}"
echo "kubernetes-validate $version (strict) and deploy_checks.py: the ${#rendered[@]} renderings of deploy/ (${rendered[*]%%=*}) are valid"
