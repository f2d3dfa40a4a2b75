"""What a pod needs before its processes start: GPU ids, the ServiceAccount token, volumes
(configMap, secret, downwardAPI, projected, claims) as files, mount points under the pod's root,
and each container's command line, env and working dir with container paths remapped to it.

Kept apart from the pod's lifecycle (``pods``): this is how the Kubernetes pod spec turns into
files and a process on this machine, not when containers run.
"""
from __future__ import annotations

import base64
import os
import re
import shutil
import sys
from typing import TYPE_CHECKING

from .common import parse_quantity, write_file

if TYPE_CHECKING:
    from .containers import ContainerRun


class PodSetup:
    """Pod setup and process building, a part of ``PodWorker`` (uses its pod, node, agent,
    containers and paths)."""

    def setup(self) -> None:
        spec = self.pod["spec"]
        # GPUs for the pod: the larger of the sum over main containers and any init container
        need_main = sum(gpu_limit(c.spec) for c in self.mains)
        need_init = max([gpu_limit(c.spec) for c in self.inits] or [0])
        need_side = sum(gpu_limit(c.spec) for c in self.inits if c.sidecar)
        self.gpu_ids = self.node.gpu_pool.take(max(need_main + need_side, need_init))
        it = iter(self.gpu_ids)
        for c in [c for c in self.inits if c.sidecar] + self.mains:
            c.gpu_ids = [next(it) for _ in range(gpu_limit(c.spec))]
        for c in self.inits:
            if not c.sidecar:
                c.gpu_ids = self.gpu_ids[: gpu_limit(c.spec)]

        sa = spec.get("serviceAccountName") or "default"
        token = None
        if spec.get("automountServiceAccountToken", True) is not False or any(
            (v.get("projected") or {}).get("sources") for v in spec.get("volumes") or []
        ):
            token = self.agent.request_token(self.ns, sa, self.name, self.uid)
        if token and spec.get("automountServiceAccountToken", True) is not False:
            self.kubeconfig_path = os.path.join(self.root, "kubeconfig")
            write_file(self.kubeconfig_path, self.agent.pod_kubeconfig(self.ns, token), 0o600)

        vol_root = os.path.join(self.root, "volumes")
        for v in spec.get("volumes") or []:
            d = os.path.join(vol_root, v["name"])
            if "persistentVolumeClaim" in v:
                # No storage: a claim is a directory of the node shared by every pod that mounts it.
                d = os.path.join(self.agent.data_dir, "claims", self.ns, v["persistentVolumeClaim"]["claimName"])
            os.makedirs(d, exist_ok=True)
            self.vol_dirs[v["name"]] = d
            if "projected" in v:
                for src in v["projected"].get("sources") or []:
                    if "serviceAccountToken" in src:
                        t = src["serviceAccountToken"]
                        tok = self.agent.request_token(
                            self.ns, sa, self.name, self.uid, audience=t.get("audience"),
                            expiration=t.get("expirationSeconds"),
                        ) if t.get("audience") else token
                        write_file(os.path.join(d, t.get("path", "token")), tok or "", 0o600)
                    else:
                        self.write_source(d, src, secret_name="name")
            else:
                self.write_source(d, v, secret_name="secretName")
            # emptyDir and others (hostPath is not supported): an empty directory
        # mount points under the pod root
        for c in self.inits + self.mains:
            for m in c.spec.get("volumeMounts") or []:
                src = self.vol_dirs.get(m["name"])
                if src is None:
                    continue
                if m.get("subPath"):
                    src = os.path.join(src, m["subPath"])
                    os.makedirs(src, exist_ok=True)
                target = self.remap(m["mountPath"])
                if os.path.islink(target) or os.path.exists(target):
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.symlink(src, target)

    def write_source(self, d: str, source: dict, *, secret_name: str) -> None:
        """A configMap, secret or downwardAPI source as files in `d`: a volume's own, or one of a
        projected volume's (where the secret's name is under `name`, not `secretName`)."""
        if "configMap" in source:
            self.write_keys(d, self.agent.get_configmap(self.ns, source["configMap"]), source["configMap"])
        elif "secret" in source:
            self.write_keys(d, self.agent.get_secret(self.ns, source["secret"].get(secret_name)), source["secret"], b64=True)
        elif "downwardAPI" in source:
            for item in source["downwardAPI"].get("items") or []:
                if "fieldRef" in item:
                    write_file(os.path.join(d, item["path"]), self.field_ref(item["fieldRef"]["fieldPath"]))

    def write_keys(self, d: str, data: dict | None, ref: dict, b64: bool = False) -> None:
        if data is None:
            if ref.get("optional"):
                return
            raise RuntimeError(f"{'secret' if b64 else 'configmap'} {ref.get('name') or ref.get('secretName')} not found")
        items = ref.get("items")
        pairs = [(i["key"], i["path"]) for i in items] if items else [(k, k) for k in data]
        for key, path in pairs:
            if key not in data:
                continue
            val = data[key]
            write_file(os.path.join(d, path), base64.b64decode(val) if b64 else val)

    def remap(self, path: str) -> str:
        return os.path.join(self.fs, path.lstrip("/")) if path.startswith("/") else os.path.join(self.fs, path)

    def field_ref(self, path: str) -> str:
        md, spec = self.pod["metadata"], self.pod["spec"]
        m = re.fullmatch(r"metadata\.(labels|annotations)\['(.*)'\]", path)
        if m:
            return (md.get(m.group(1)) or {}).get(m.group(2), "")
        if path in ("metadata.labels", "metadata.annotations"):
            return "\n".join(f'{k}="{v}"' for k, v in sorted((md.get(path.split(".")[1]) or {}).items()))
        return {
            "metadata.name": md["name"],
            "metadata.namespace": md["namespace"],
            "metadata.uid": md["uid"],
            "spec.nodeName": spec.get("nodeName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
            "status.podIP": "127.0.0.1",
            "status.podIPs": "127.0.0.1",
            "status.hostIP": "127.0.0.1",
            "status.hostIPs": "127.0.0.1",
        }.get(path, "")

    def build_process(self, c: ContainerRun) -> tuple[list[str], dict, str]:
        spec = c.spec
        py_dir = os.path.dirname(sys.executable)
        env: dict[str, str] = {
            "PATH": os.pathsep.join([py_dir, os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")]),
            "HOME": os.path.join(self.fs, "root"),
            "HOSTNAME": self.name,
            "DIAL_POD_ROOT": self.fs,
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.agent.api_port),
        }
        os.makedirs(env["HOME"], exist_ok=True)
        for k in ("LANG", "LC_ALL", "TZ", "TMPDIR") + tuple(self.agent.pass_env):
            if k in os.environ:
                env[k] = os.environ[k]
        if self.kubeconfig_path:
            env["KUBECONFIG"] = self.kubeconfig_path
        # like the NVIDIA device plugin: a container sees only the GPUs it was given (none: none)
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, c.gpu_ids))
        env["NVIDIA_VISIBLE_DEVICES"] = env["CUDA_VISIBLE_DEVICES"] or "void"
        # path remapping for mount paths and the working dir
        mounts = [m["mountPath"] for m in spec.get("volumeMounts") or []]
        wd = spec.get("workingDir")
        prefixes = sorted({p.rstrip("/") for p in mounts + ([wd] if wd else []) if p and p != "/"}, key=len, reverse=True)
        rx = re.compile(r"(?<![\w./-])(" + "|".join(re.escape(p) for p in prefixes) + r")(?=$|[/\s'\"=:,;)\]])") if prefixes else None

        def rewrite(s: str) -> str:
            return rx.sub(lambda m: self.remap(m.group(1)), s) if rx else s

        for ef in spec.get("envFrom") or []:
            prefix = ef.get("prefix", "")
            if "configMapRef" in ef:
                data = self.agent.get_configmap(self.ns, ef["configMapRef"])
                if data is None and not ef["configMapRef"].get("optional"):
                    raise RuntimeError(f"configmap {ef['configMapRef'].get('name')} not found")
                for k, v in (data or {}).items():
                    env[prefix + k] = v
            if "secretRef" in ef:
                data = self.agent.get_secret(self.ns, ef["secretRef"].get("name"))
                if data is None and not ef["secretRef"].get("optional"):
                    raise RuntimeError(f"secret {ef['secretRef'].get('name')} not found")
                for k, v in (data or {}).items():
                    env[prefix + k] = base64.b64decode(v).decode()
        for e in spec.get("env") or []:
            if "valueFrom" in e:
                vf = e["valueFrom"]
                if "fieldRef" in vf:
                    val = self.field_ref(vf["fieldRef"]["fieldPath"])
                elif "resourceFieldRef" in vf:
                    val = self.resource_ref(spec if not vf["resourceFieldRef"].get("containerName") else self.container_spec(vf["resourceFieldRef"]["containerName"]), vf["resourceFieldRef"])
                elif "configMapKeyRef" in vf:
                    ref = vf["configMapKeyRef"]
                    data = self.agent.get_configmap(self.ns, ref)
                    if (data is None or ref["key"] not in data):
                        if ref.get("optional"):
                            continue
                        raise RuntimeError(f"configmap key {ref.get('name')}/{ref['key']} not found")
                    val = data[ref["key"]]
                elif "secretKeyRef" in vf:
                    ref = vf["secretKeyRef"]
                    data = self.agent.get_secret(self.ns, ref.get("name"))
                    if (data is None or ref["key"] not in data):
                        if ref.get("optional"):
                            continue
                        raise RuntimeError(f"secret key {ref.get('name')}/{ref['key']} not found")
                    val = base64.b64decode(data[ref["key"]]).decode()
                else:
                    val = ""
            else:
                val = expand(e.get("value", ""), env)
            env[e["name"]] = rewrite(val)
        command = [rewrite(expand(a, env)) for a in spec.get("command") or []]
        args = [rewrite(expand(a, env)) for a in spec.get("args") or []]
        argv = command + args
        if not argv:
            raise RuntimeError("container has no command or args (images are not run, only recorded)")
        exe = shutil.which(argv[0], path=env["PATH"])
        if exe is None and not os.path.isabs(argv[0]):
            raise RuntimeError(f'executable "{argv[0]}" not found in $PATH')
        if exe:
            argv[0] = exe
        cwd = self.remap(wd) if wd else self.fs
        os.makedirs(cwd, exist_ok=True)
        return argv, env, cwd

    def container_spec(self, name: str) -> dict:
        for c in self.inits + self.mains:
            if c.name == name:
                return c.spec
        return {}

    def resource_ref(self, spec: dict, ref: dict) -> str:
        kind, _, res = ref["resource"].partition(".")
        q = ((spec.get("resources") or {}).get(kind) or {}).get(res)
        if q is None:
            q = {"cpu": self.node.cpu, "memory": self.node.memory}.get(res, "0")
        div = parse_quantity(ref.get("divisor", "1"))
        v = parse_quantity(q) / (div or 1)
        return str(int(-(-v // 1)))  # ceil, like the kubelet


def gpu_limit(spec: dict) -> int:
    res = spec.get("resources") or {}
    q = (res.get("limits") or {}).get("nvidia.com/gpu") or (res.get("requests") or {}).get("nvidia.com/gpu")
    return int(parse_quantity(q)) if q else 0


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(s: str, env: dict) -> str:
    """Kubernetes $(VAR) expansion; $$ escapes a dollar; unknown references stay as written."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR.sub(sub, s)
