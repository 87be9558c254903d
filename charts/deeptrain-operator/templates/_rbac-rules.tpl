{{/*
The operator's permissions, split by scope. Each rule says who needs it:
  framework   - kopf itself (watching resources, its finalizers and annotations, posting events)
  application - deeptrain's controllers (children of jobs and workflows, status)
No rule uses "*" and none touches Secrets: a dataset's secretRef reaches the pods through envFrom,
which the kubelet resolves; the operator never reads it.
*/}}

{{/* Cluster-scoped rules, needed whatever the watched namespaces are. */}}
{{- define "deeptrain-operator.rbac.clusterRules" -}}
# framework: kopf checks that the CRDs of the resources it serves exist and follows their changes.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{/* kopf needs this only when it serves every namespace: it watches which namespaces exist. */}}
{{- define "deeptrain-operator.rbac.allNamespacesRules" -}}
# framework: kopf follows namespaces coming and going when it watches the whole cluster.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{/* Rules for each watched namespace (or the whole cluster when none is listed). */}}
{{- define "deeptrain-operator.rbac.namespacedRules" -}}
# framework + application: kopf watches the custom resources and patches their metadata
# (its finalizer, last-handled state); the controllers read specs.
- apiGroups: ["deeptrain.dev"]
  resources: ["deeptrainingjobs", "workflows"]
  verbs: ["get", "list", "watch", "patch", "update"]
# application: the controllers write status only through the status subresource (kopf keeps its
# own state in annotations). The per-job Role the operator creates grants a subset of this rule,
# which is why the operator needs neither "escalate" nor "bind" on roles.
- apiGroups: ["deeptrain.dev"]
  resources: ["deeptrainingjobs/status", "workflows/status"]
  verbs: ["get", "patch", "update"]
# application: children carry ownerReferences with blockOwnerDeletion, which the
# OwnerReferencesPermissionEnforcement admission plugin allows only to who may update the owner's finalizers.
- apiGroups: ["deeptrain.dev"]
  resources: ["deeptrainingjobs/finalizers", "workflows/finalizers"]
  verbs: ["update"]
# framework + application: kopf posts handler results as Events; the controllers post job milestones.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# application: per-job trainer config (ConfigMap), rendezvous Service, per-job ServiceAccount for
# rank 0's progress reports; a workflow's serving Service.
- apiGroups: [""]
  resources: ["configmaps", "services", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# application: read-only view of worker pods, to report readiness, restarts and failure reasons.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# application: the indexed Job that runs a training gang, and indexing jobs of workflows.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# application: a workflow's serving Deployment.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# application: the per-job Role (get/patch on that one job's status) and its RoleBinding.
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
{{- if .Values.rbac.gangScheduling }}
# application: gang-scheduling PodGroups for jobs that set spec.scheduling.gang.
- apiGroups: ["scheduling.x-k8s.io", "scheduling.volcano.sh"]
  resources: ["podgroups"]
  verbs: ["get", "list", "watch", "create", "delete"]
{{- end }}
{{- end }}
