#!/usr/bin/env bash
# End-to-end on a local kind cluster (needs Docker, kind, kubectl; helm comes from hack/install-helm.sh):
# build both images, install the chart with them, write the digits dataset onto a PVC
# (examples/cluster/digits-data.yaml), train examples/cluster/visual-classifier.yaml to
# Succeeded in a namespace that enforces the restricted Pod Security profile, then run the
# operator-integration suite against the same cluster.
#
#   bash hack/kind-e2e.sh
#   KEEP_CLUSTER=1 bash hack/kind-e2e.sh        # leave the cluster up to poke at it
#   TORCH_PIP_ARGS="--index-url <CPU wheel index>" bash hack/kind-e2e.sh   # smaller trainer image
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CLUSTER="${CLUSTER:-deeptrain-e2e}"
TAG="${TAG:-e2e}"
OPERATOR_NAMESPACE="deeptrain-system"
JOB_NAMESPACE="deeptrain-e2e"
DATA="examples/cluster/digits-data.yaml"
EXAMPLE="examples/cluster/visual-classifier.yaml"
TIMEOUT="${TIMEOUT:-45m}"

bash hack/install-helm.sh
HELM="$PWD/.tools/bin/helm"
PYTEST="${PYTEST:-.venv/bin/pytest}"

kubeconfig="$(mktemp)"
cleanup() {
  rm -f "$kubeconfig"
  if [[ -z "${KEEP_CLUSTER:-}" ]]; then kind delete cluster --name "$CLUSTER"; fi
}
trap cleanup EXIT
# On any failure, show what the operator and the job were doing.
trap 'kubectl -n "$JOB_NAMESPACE" get deeptrainingjobs,jobs,pods -o wide || true
      kubectl -n "$JOB_NAMESPACE" describe deeptrainingjobs || true
      kubectl -n "$OPERATOR_NAMESPACE" logs deployment/deeptrain-operator --tail=200 || true' ERR

docker build --target operator -t "deeptrain-operator:$TAG" .
docker build --target trainer --build-arg TORCH_PIP_ARGS="${TORCH_PIP_ARGS:-}" -t "deeptrain-trainer:$TAG" .

kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
kind get kubeconfig --name "$CLUSTER" > "$kubeconfig"
export KUBECONFIG="$kubeconfig"
kind load docker-image --name "$CLUSTER" "deeptrain-operator:$TAG" "deeptrain-trainer:$TAG"

for namespace in "$OPERATOR_NAMESPACE" "$JOB_NAMESPACE"; do
  kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f -
  kubectl label --overwrite namespace "$namespace" pod-security.kubernetes.io/enforce=restricted
done

# fullnameOverride gives the Deployment a fixed name for the log dump above.
"$HELM" upgrade --install deeptrain charts/deeptrain-operator \
  --namespace "$OPERATOR_NAMESPACE" \
  --set fullnameOverride=deeptrain-operator \
  --set image.tag="$TAG" \
  --set operator.trainerImage.tag="$TAG" \
  --wait --timeout 5m
# Helm installs crds/ only on first install; keep them current on reruns.
kubectl apply --server-side --force-conflicts -f charts/deeptrain-operator/crds/

# The examples name the trainer image by its default tag; point them at the one loaded above.
sed "s|deeptrain-trainer:0.1.0|deeptrain-trainer:$TAG|" "$DATA" | kubectl apply -n "$JOB_NAMESPACE" -f -
kubectl wait -n "$JOB_NAMESPACE" job/make-digits --for=condition=Complete --timeout=10m
job="$(kubectl apply -n "$JOB_NAMESPACE" -f "$EXAMPLE" -o name | grep '^deeptrainingjob')"
kubectl wait -n "$JOB_NAMESPACE" "$job" --for=jsonpath='{.status.phase}'=Succeeded --timeout="$TIMEOUT"
kubectl get -n "$JOB_NAMESPACE" "$job" -o wide

# The integration suite runs its own operator in-process; the installed one must not race it.
kubectl -n "$OPERATOR_NAMESPACE" scale deployment/deeptrain-operator --replicas=0
kubectl -n "$OPERATOR_NAMESPACE" delete pod -l app.kubernetes.io/instance=deeptrain --wait=true --timeout=2m
DEEPTRAIN_TEST_KUBECONFIG="$kubeconfig" "$PYTEST" tests/operator/integration
