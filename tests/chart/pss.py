"""The Pod Security Standards "restricted" profile (which includes "baseline"), as a checker over a
pod spec, so that any manifest the project produces - the chart's operator Deployment, the trainer
Jobs the operator builds - can be held to what a namespace labelled
`pod-security.kubernetes.io/enforce: restricted` admits.

    from pss import restricted_violations, pod_template
    assert restricted_violations(pod_template(manifest)) == []

Each violation is a sentence naming the field, so a failing assertion reads like the admission
error a user would get.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# Restricted: the only volume types allowed.
ALLOWED_VOLUME_TYPES = frozenset({
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
})
# Restricted: the only capability that may be added back after dropping ALL.
ALLOWED_ADDED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
# Baseline: namespaced sysctls that cannot affect other pods on the node.
SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
})
ALLOWED_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"

POD_TEMPLATE_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"})


def pod_template(manifest: dict[str, Any]) -> dict[str, Any]:
    """The pod (metadata + spec) a workload manifest creates; a Pod is returned as is."""
    kind = manifest.get("kind")
    if kind == "Pod":
        return manifest
    if kind == "CronJob":
        return manifest["spec"]["jobTemplate"]["spec"]["template"]
    if kind in POD_TEMPLATE_KINDS:
        return manifest["spec"]["template"]
    raise ValueError(f"{kind} has no pod template")


def _containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(field) or []:
            yield f"{field}[{container.get('name', '?')}]", container


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """Every way `pod` ({metadata, spec}) breaks the restricted profile; empty when it complies."""
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    pod_sc = spec.get("securityContext") or {}
    containers = list(_containers(spec))
    problems: list[str] = []

    if not spec.get("containers"):
        problems.append("spec.containers is empty: nothing to check")

    # --- baseline ---------------------------------------------------------------------------------
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"spec.{field} must be unset or false")
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        problems.append("spec.securityContext.windowsOptions.hostProcess must not be true")
    for volume in spec.get("volumes") or []:
        types = set(volume) - {"name"}
        if "hostPath" in types:
            problems.append(f"volume {volume.get('name')}: hostPath volumes are forbidden")
        elif not types <= ALLOWED_VOLUME_TYPES:
            problems.append(f"volume {volume.get('name')}: type {sorted(types - ALLOWED_VOLUME_TYPES)} is not allowed")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            problems.append(f"spec.securityContext.sysctls: {sysctl.get('name')} is not a safe sysctl")
    problems += _selinux_problems("spec.securityContext", pod_sc)
    problems += _apparmor_problems("spec.securityContext", pod_sc)
    for key, value in (metadata.get("annotations") or {}).items():
        if key.startswith(APPARMOR_ANNOTATION_PREFIX) and value != "runtime/default" and not value.startswith("localhost/"):
            problems.append(f"annotation {key}={value}: AppArmor must be runtime/default or localhost/*")

    # --- restricted: pod level, which containers may inherit --------------------------------------
    pod_non_root = pod_sc.get("runAsNonRoot")
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_sc.get("runAsUser") == 0:
        problems.append("spec.securityContext.runAsUser must not be 0")
    if pod_seccomp is not None and pod_seccomp not in ("RuntimeDefault", "Localhost"):
        problems.append(f"spec.securityContext.seccompProfile.type={pod_seccomp}: must be RuntimeDefault or Localhost")

    for where, container in containers:
        sc = container.get("securityContext") or {}
        path = f"{where}.securityContext"
        if sc.get("privileged"):
            problems.append(f"{path}.privileged must be unset or false")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            problems.append(f"{path}.windowsOptions.hostProcess must not be true")
        if sc.get("procMount", "Default") != "Default":
            problems.append(f"{path}.procMount must be Default")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{where}.ports: hostPort {port['hostPort']} is forbidden")
        problems += _selinux_problems(path, sc)
        problems += _apparmor_problems(path, sc)

        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{path}.allowPrivilegeEscalation must be false")
        non_root = sc.get("runAsNonRoot", pod_non_root)
        if non_root is not True:
            problems.append(f"{path}.runAsNonRoot must be true (here or in spec.securityContext)")
        if sc.get("runAsUser") == 0:
            problems.append(f"{path}.runAsUser must not be 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{path}.seccompProfile.type must be RuntimeDefault or Localhost (here or pod-wide), got {seccomp}")
        capabilities = sc.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{path}.capabilities.drop must include ALL")
        added = set(capabilities.get("add") or []) - ALLOWED_ADDED_CAPABILITIES
        if added:
            problems.append(f"{path}.capabilities.add: {sorted(added)} not allowed (only NET_BIND_SERVICE)")
    return problems


def _selinux_problems(path: str, sc: dict[str, Any]) -> list[str]:
    options = sc.get("seLinuxOptions") or {}
    problems = []
    if options.get("type", "") not in ALLOWED_SELINUX_TYPES:
        problems.append(f"{path}.seLinuxOptions.type={options['type']} is not allowed")
    for field in ("user", "role"):
        if options.get(field):
            problems.append(f"{path}.seLinuxOptions.{field} must be unset")
    return problems


def _apparmor_problems(path: str, sc: dict[str, Any]) -> list[str]:
    kind = (sc.get("appArmorProfile") or {}).get("type")
    if kind is not None and kind not in ("RuntimeDefault", "Localhost"):
        return [f"{path}.appArmorProfile.type={kind}: must be RuntimeDefault or Localhost"]
    return []
