"""The restricted-profile checker catches each rule it claims to check; otherwise a green chart test
would prove nothing."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pss import pod_template, restricted_violations  # noqa: E402


def compliant_pod() -> dict:
    return {
        "metadata": {"name": "p"},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [{"name": "init", "image": "i", "securityContext": {
                "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
            "containers": [{"name": "main", "image": "i", "ports": [{"containerPort": 8080}], "securityContext": {
                "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
            "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}},
                        {"name": "data", "persistentVolumeClaim": {"claimName": "d"}}],
        },
    }


def test_compliant_pod_passes():
    assert restricted_violations(compliant_pod()) == []


def main(pod):
    return pod["spec"]["containers"][0]


VIOLATIONS = {
    "hostNetwork": (lambda p: p["spec"].update(hostNetwork=True), "hostNetwork"),
    "hostPID": (lambda p: p["spec"].update(hostPID=True), "hostPID"),
    "hostIPC": (lambda p: p["spec"].update(hostIPC=True), "hostIPC"),
    "hostPath volume": (lambda p: p["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
    "nfs volume": (lambda p: p["spec"]["volumes"].append({"name": "n", "nfs": {"server": "s", "path": "/"}}), "nfs"),
    "hostPort": (lambda p: main(p)["ports"][0].update(hostPort=8080), "hostPort"),
    "privileged": (lambda p: main(p)["securityContext"].update(privileged=True), "privileged"),
    "privilege escalation allowed": (lambda p: main(p)["securityContext"].update(allowPrivilegeEscalation=True), "allowPrivilegeEscalation"),
    "privilege escalation unset": (lambda p: main(p)["securityContext"].pop("allowPrivilegeEscalation"), "allowPrivilegeEscalation"),
    "init container escalation": (lambda p: p["spec"]["initContainers"][0]["securityContext"].pop("allowPrivilegeEscalation"), "initContainers[init]"),
    "runAsNonRoot missing": (lambda p: p["spec"]["securityContext"].pop("runAsNonRoot"), "runAsNonRoot"),
    "container overrides runAsNonRoot": (lambda p: main(p)["securityContext"].update(runAsNonRoot=False), "runAsNonRoot"),
    "runAsUser 0": (lambda p: main(p)["securityContext"].update(runAsUser=0), "runAsUser"),
    "pod runAsUser 0": (lambda p: p["spec"]["securityContext"].update(runAsUser=0), "runAsUser"),
    "seccomp missing": (lambda p: p["spec"]["securityContext"].pop("seccompProfile"), "seccompProfile"),
    "seccomp unconfined": (lambda p: main(p)["securityContext"].update(seccompProfile={"type": "Unconfined"}), "seccompProfile"),
    "capabilities not dropped": (lambda p: main(p)["securityContext"]["capabilities"].update(drop=["NET_RAW"]), "drop must include ALL"),
    "capability added": (lambda p: main(p)["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]), "SYS_ADMIN"),
    "unsafe sysctl": (lambda p: p["spec"]["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]), "kernel.msgmax"),
    "selinux user": (lambda p: main(p)["securityContext"].update(seLinuxOptions={"user": "root"}), "seLinuxOptions.user"),
    "selinux type": (lambda p: main(p)["securityContext"].update(seLinuxOptions={"type": "spc_t"}), "spc_t"),
    "procMount": (lambda p: main(p)["securityContext"].update(procMount="Unmasked"), "procMount"),
    "apparmor unconfined": (lambda p: main(p)["securityContext"].update(appArmorProfile={"type": "Unconfined"}), "appArmorProfile"),
    "apparmor annotation": (lambda p: p["metadata"].update(annotations={
        "container.apparmor.security.beta.kubernetes.io/main": "unconfined"}), "AppArmor"),
    "windows host process": (lambda p: main(p)["securityContext"].update(windowsOptions={"hostProcess": True}), "hostProcess"),
}


@pytest.mark.parametrize("mutate,expected", VIOLATIONS.values(), ids=VIOLATIONS.keys())
def test_each_violation_is_reported(mutate, expected):
    pod = copy.deepcopy(compliant_pod())
    mutate(pod)
    problems = restricted_violations(pod)
    assert any(expected in problem for problem in problems), problems


def test_container_level_settings_satisfy_the_profile_without_pod_level_ones():
    pod = compliant_pod()
    pod["spec"]["securityContext"] = {}
    for _, container in [("", c) for c in pod["spec"]["initContainers"] + pod["spec"]["containers"]]:
        container["securityContext"].update(runAsNonRoot=True, seccompProfile={"type": "Localhost", "localhostProfile": "p.json"})
    assert restricted_violations(pod) == []


def test_pod_template_of_workloads():
    pod = compliant_pod()
    assert pod_template({"kind": "Job", "spec": {"template": pod}}) is pod
    assert pod_template({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": pod}}}}) is pod
    with pytest.raises(ValueError):
        pod_template({"kind": "ConfigMap"})
