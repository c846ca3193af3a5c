#!/usr/bin/env bash
# An independent check of the Jobs chainr creates: `chainrc run --kube --dry-run` on every example
# and fixture, validated by kubernetes-validate (the official schemas, strict) for the Kubernetes
# version chainr targets. Usage: validate-manifests.sh CHAINRC
set -euo pipefail
cd "$(dirname "$0")/../.."
chainrc=${1:?usage: validate-manifests.sh PATH-TO-CHAINRC}
version=1.33.0
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
count=0
for file in examples/*.chainr tests/fixtures/ok/*.chainr; do
  params=()
  # Fixtures that need params say so on their first line: `// params: a=1, b=2`.
  if head -n1 "$file" | grep -q '^// params: '; then
    while IFS= read -r p; do params+=(-p "$p"); done < <(head -n1 "$file" | sed 's|^// params: ||; s|, |\n|g')
  fi
  "$chainrc" run --kube --dry-run --namespace ci "${params[@]}" "$file" >"$out/$(basename "$file" .chainr).yaml"
  count=$((count + 1))
done
kubernetes-validate --strict --quiet -k "$version" "$out"/*.yaml
deploy=deploy/base/rbac.yaml
kubernetes-validate --strict --quiet -k "$version" "$deploy"
echo "kubernetes-validate $version (strict): the Jobs of $count pipelines and $deploy are valid"
