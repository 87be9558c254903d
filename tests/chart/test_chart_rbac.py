"""The operator's RBAC is exactly what it uses: no wildcard, no Secret access, cluster-wide only when
it watches the whole cluster, and enough to create the per-job Role without escalate/bind."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import operator_objects  # noqa: E402
from chartlib import NAMESPACE, find, render, template, write_values  # noqa: E402

RBAC_KINDS = {"ClusterRole", "Role"}
USER_ROLES = {"deeptrain-view", "deeptrain-edit"}
WRITE = {"create", "patch", "update", "delete"}
READ = {"get", "list", "watch"}


@pytest.fixture(scope="module")
def cluster_wide():
    return render()


@pytest.fixture(scope="module")
def namespaced(tmp_path_factory):
    values = {"operator": {"watchNamespaces": ["team-a", "team-b"]}}
    return render(write_values(tmp_path_factory.mktemp("ns"), values))


def operator_roles(docs):
    return [d for d in docs if d["kind"] in RBAC_KINDS and d["metadata"]["name"] not in USER_ROLES]


def grants(rules, group, resource, verb, name=None) -> bool:
    """Whether `rules` allow `verb` on group/resource (object `name`), as the RBAC authorizer decides."""
    return any(
        group in rule.get("apiGroups", [])
        and resource in rule.get("resources", [])
        and verb in rule.get("verbs", [])
        and (not rule.get("resourceNames") or name in rule["resourceNames"])
        for rule in rules
    )


def effective_rules(docs, namespace):
    """Rules the operator's ServiceAccount holds in `namespace` (None: cluster-scoped resources)."""
    bindings = [d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs if d["kind"] in RBAC_KINDS}
    rules = []
    for binding in bindings:
        if binding["kind"] == "RoleBinding" and binding["metadata"]["namespace"] != namespace:
            continue
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "dt-deeptrain-operator", "namespace": NAMESPACE}]
        ref = binding["roleRef"]
        key = (ref["kind"], binding["metadata"].get("namespace") if ref["kind"] == "Role" else None, ref["name"])
        rules += roles[key]["rules"]
    return rules


@pytest.mark.parametrize("mode", ["cluster_wide", "namespaced"])
def test_no_wildcard_anywhere(mode, request):
    for role in [d for d in request.getfixturevalue(mode) if d["kind"] in RBAC_KINDS]:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert not any("*" in item for item in rule.get(field, [])), f"{role['metadata']['name']}: {rule}"


@pytest.mark.parametrize("mode", ["cluster_wide", "namespaced"])
def test_no_secret_access(mode, request):
    for role in [d for d in request.getfixturevalue(mode) if d["kind"] in RBAC_KINDS]:
        for rule in role["rules"]:
            assert "secrets" not in rule.get("resources", []), f"{role['metadata']['name']} touches secrets: {rule}"


@pytest.mark.parametrize("mode", ["cluster_wide", "namespaced"])
def test_pods_are_read_only(mode, request):
    for role in operator_roles(request.getfixturevalue(mode)):
        for rule in role["rules"]:
            if "pods" in rule["resources"] and "" in rule["apiGroups"]:
                assert set(rule["verbs"]) <= READ


def test_cluster_wide_mode_grants_the_operator_what_it_does(cluster_wide):
    rules = effective_rules(cluster_wide, namespace="any")
    expected = {
        ("deeptrain.dev", "deeptrainingjobs"): READ | {"patch", "update"},
        ("deeptrain.dev", "workflows"): READ | {"patch", "update"},
        ("deeptrain.dev", "deeptrainingjobs/status"): {"get", "patch", "update"},
        ("deeptrain.dev", "workflows/status"): {"get", "patch", "update"},
        ("deeptrain.dev", "deeptrainingjobs/finalizers"): {"update"},
        ("deeptrain.dev", "workflows/finalizers"): {"update"},
        ("apiextensions.k8s.io", "customresourcedefinitions"): READ,
        ("", "namespaces"): READ,
        ("", "events"): {"create", "patch"},
        ("events.k8s.io", "events"): {"create", "patch"},
        ("", "configmaps"): READ | WRITE,
        ("", "services"): READ | WRITE,
        ("", "serviceaccounts"): READ | WRITE,
        ("", "pods"): READ,
        ("batch", "jobs"): READ | WRITE,
        ("apps", "deployments"): READ | WRITE,
        ("rbac.authorization.k8s.io", "roles"): READ | WRITE,
        ("rbac.authorization.k8s.io", "rolebindings"): READ | WRITE,
    }
    granted = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    assert granted == expected


def test_no_escalate_or_bind(cluster_wide, namespaced):
    for role in operator_roles(cluster_wide) + operator_roles(namespaced):
        for rule in role["rules"]:
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule


@pytest.mark.parametrize("mode", ["cluster_wide", "namespaced"])
def test_operator_can_create_the_per_job_role_without_escalate(mode, request):
    # The API server lets a user create a Role only with permissions it already holds in that
    # namespace (or "escalate"), and bind a Role only if it holds them (or "bind"). So every
    # permission of the per-job Role the operator builds must be one the operator holds there.
    role = operator_objects.operator_builders.build_role(operator_objects.admit(operator_objects.GPU_JOB))
    namespace = operator_objects.GPU_JOB["metadata"]["namespace"]
    operator = effective_rules(request.getfixturevalue(mode), namespace=namespace)
    assert grants(operator, "rbac.authorization.k8s.io", "roles", "create")
    assert grants(operator, "rbac.authorization.k8s.io", "rolebindings", "create")
    assert role["rules"], "an empty per-job Role grants nothing to check"
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in rule.get("resourceNames") or [None]:
                        assert grants(operator, group, resource, verb, name), (group, resource, verb, name)


def test_namespaced_mode_has_a_role_per_watched_namespace(namespaced):
    roles = {d["metadata"]["namespace"] for d in find(namespaced, "Role")}
    bindings = {d["metadata"]["namespace"] for d in find(namespaced, "RoleBinding")}
    assert roles == bindings == {"team-a", "team-b"}
    rules = effective_rules(namespaced, namespace="team-b")
    assert grants(rules, "batch", "jobs", "create")
    assert grants(rules, "deeptrain.dev", "deeptrainingjobs", "watch")
    unwatched = effective_rules(namespaced, namespace="team-c")
    assert not grants(unwatched, "batch", "jobs", "create"), "an unwatched namespace must get nothing"
    assert not grants(unwatched, "deeptrain.dev", "deeptrainingjobs", "watch")


def test_namespaced_mode_keeps_only_crd_reads_cluster_wide(namespaced):
    (cluster_role,) = [d for d in find(namespaced, "ClusterRole") if d["metadata"]["name"] not in USER_ROLES]
    assert cluster_role["rules"] == [
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["get", "list", "watch"]}
    ]


def test_finalizers_permission_for_owner_references(cluster_wide, namespaced):
    # Children set blockOwnerDeletion; with OwnerReferencesPermissionEnforcement that needs
    # update on the owner's finalizers subresource.
    for docs in (cluster_wide, namespaced):
        rules = effective_rules(docs, namespace="team-a")
        assert grants(rules, "deeptrain.dev", "deeptrainingjobs/finalizers", "update")
        assert grants(rules, "deeptrain.dev", "workflows/finalizers", "update")


def test_pod_groups_only_when_gang_scheduling_is_enabled(cluster_wide, tmp_path):
    rules = effective_rules(cluster_wide, namespace="team-a")
    assert not grants(rules, "scheduling.x-k8s.io", "podgroups", "create")
    docs = render(write_values(tmp_path, {"rbac": {"gangScheduling": True}}))
    rules = effective_rules(docs, namespace="team-a")
    for group in ("scheduling.x-k8s.io", "scheduling.volcano.sh"):
        for verb in READ | {"create", "delete"}:
            assert grants(rules, group, "podgroups", verb)
        assert not grants(rules, group, "podgroups", "update")


def test_rbac_create_false_renders_no_operator_rbac(tmp_path):
    docs = render(write_values(tmp_path, {"rbac": {"create": False}}))
    assert operator_roles(docs) == []
    assert not [d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]


def test_every_rule_says_whether_kopf_or_the_application_needs_it(tmp_path):
    # A rule that nobody can explain is a rule nobody dares to remove.
    rendered = template(values=write_values(tmp_path, {"rbac": {"gangScheduling": True}})).stdout
    for document in rendered.split("\n---\n"):
        if not re.search(r"^kind: (ClusterRole|Role)$", document, re.M) or re.search(r"name: deeptrain-(view|edit)$", document, re.M):
            continue
        lines = document.splitlines()
        rule_starts = [i for i, line in enumerate(lines) if line.strip().startswith("- apiGroups:")]
        assert rule_starts
        for index in rule_starts:
            above = index - 1
            # rules may share one comment block (the two events rules), so look back to the nearest comment
            while not lines[above].strip().startswith("#"):
                assert lines[above].strip().startswith(("resources:", "verbs:", "- apiGroups:")), lines[above]
                above -= 1
            while lines[above - 1].strip().startswith("#"):
                above -= 1
            assert re.match(r"\s*# (framework|application|framework \+ application):", lines[above]), lines[index]


def test_user_roles_aggregate_into_view_edit_admin(cluster_wide):
    roles = {d["metadata"]["name"]: d for d in find(cluster_wide, "ClusterRole")}
    view, edit = roles["deeptrain-view"], roles["deeptrain-edit"]
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert grants(view["rules"], "deeptrain.dev", "deeptrainingjobs", "list")
    assert not any(grants(view["rules"], "deeptrain.dev", "deeptrainingjobs", v) for v in WRITE)
    assert grants(edit["rules"], "deeptrain.dev", "workflows", "create")
    # only the operator writes status
    for role in (view, edit):
        for verb in WRITE:
            assert not grants(role["rules"], "deeptrain.dev", "deeptrainingjobs/status", verb)


def test_user_roles_can_be_left_to_another_release(tmp_path):
    docs = render(write_values(tmp_path, {"rbac": {"aggregateToUserRoles": False}}))
    assert not {d["metadata"]["name"] for d in find(docs, "ClusterRole")} & USER_ROLES
