"""The node's images, built here because no registry is reachable, cached by a hash of their inputs.

- ``registry.k8s.io/pause:dial``: one layer holding the static ``pause`` program (hack/controlplane/pause).
- ``dial.local/debian-python:bookworm-<hash>``: a Debian rootfs from ``mmdebstrap`` with Python from
  Debian's packages, the ``BASE`` of the worker image.
- ``docker.io/library/dial-worker:<version>``: ``worker_image/Dockerfile`` built by ``buildah``.

Each is saved as a docker-archive under ``<cache>/images/`` and imported into containerd's
``k8s.io`` namespace at ``hack/cluster up``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time

from .node import PAUSE_IMAGE

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
IMAGES_REV = "1"  # bump when a build command below changes
DEBIAN_SUITE = "bookworm"
DEBIAN_PACKAGES = ["python3", "python3-venv", "python-is-python3", "passwd", "ca-certificates"]
# the machine's own Debian sources (its mirror or proxy), else Debian's
APT_SOURCES_CANDIDATES = ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
NOSHELL_REF = "docker.io/library/dial-worker-noshell:test"  # built only for the tests that need it


def say(msg: str) -> None:
    print(f"[images] {msg}", file=sys.stderr, flush=True)


def worker_ref() -> str:
    with open(os.path.join(REPO, "operator", "dial", "__init__.py")) as f:
        version = next(ln.split("=")[1].strip().strip("\"'") for ln in f if ln.startswith("__version__"))
    return f"docker.io/library/dial-worker:{version}"


def _hash_files(h: "hashlib._Hash", files: list[str]) -> None:
    for path in sorted(files):
        h.update(os.path.relpath(path, REPO).encode() + b"\0")
        with open(path, "rb") as f:
            h.update(f.read())


def worker_inputs() -> list[str]:
    files = [os.path.join(REPO, x) for x in ("pyproject.toml", "README.md", "worker_image/Dockerfile",
                                              "worker_image/Dockerfile.dockerignore")]
    for dirpath, dirs, names in os.walk(os.path.join(REPO, "operator")):
        dirs[:] = [x for x in dirs if x != "__pycache__" and not x.endswith(".egg-info")]
        files += [os.path.join(dirpath, n) for n in names if not n.endswith((".pyc", ".pyo"))]
    return files


class Images:
    def __init__(self, cache: str, pause_bin: str):
        self.cache = cache
        self.dir = os.path.join(cache, "images")
        self.pause_bin = pause_bin
        self.buildah_root = os.path.join(cache, "buildah", "root")
        self.buildah_runroot = os.path.join(cache, "buildah", "run")
        os.makedirs(self.dir, exist_ok=True)

    # -------------------------------------------------------------- keys
    def _key(self, *parts: bytes | str) -> str:
        h = hashlib.sha256(IMAGES_REV.encode())
        for p in parts:
            h.update(p if isinstance(p, bytes) else p.encode())
            h.update(b"\0")
        return h.hexdigest()[:16]

    def base_key(self) -> str:
        sources = apt_sources()
        if os.path.isfile(sources):
            with open(sources, "rb") as f:
                return self._key(DEBIAN_SUITE, " ".join(DEBIAN_PACKAGES), f.read())
        return self._key(DEBIAN_SUITE, " ".join(DEBIAN_PACKAGES), sources)

    def base_ref(self) -> str:
        return f"dial.local/debian-python:{DEBIAN_SUITE}-{self.base_key()}"

    def worker_key(self) -> str:
        h = hashlib.sha256()
        _hash_files(h, worker_inputs())
        return self._key(self.base_key(), h.hexdigest())

    # -------------------------------------------------------------- buildah
    def buildah(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        argv = ["buildah", "--root", self.buildah_root, "--runroot", self.buildah_runroot,
                "--storage-driver", "overlay", *args]
        return subprocess.run(argv, check=check, **kw)

    def _has_image(self, ref: str) -> bool:
        return self.buildah("inspect", "--type", "image", ref, capture_output=True, check=False).returncode == 0

    def save(self, ref: str, out: str) -> None:
        """Write the image in buildah's store to `out` as a docker-archive (atomically)."""
        tmp = out + ".tmp"
        if os.path.exists(tmp):
            os.remove(tmp)
        self.buildah("push", "--quiet", ref, f"docker-archive:{tmp}:{ref}")
        os.replace(tmp, out)

    # -------------------------------------------------------------- images
    def pause_archive(self) -> str:
        with open(self.pause_bin, "rb") as f:
            binary = f.read()
        out = os.path.join(self.dir, f"pause-{self._key(binary)}.tar")
        if not os.path.exists(out):
            write_single_layer_archive(out, PAUSE_IMAGE, {"pause": (binary, 0o755)}, entrypoint=["/pause"])
        return out

    def base_image(self) -> str:
        """The Debian base in buildah's store (from mmdebstrap), cached by its inputs."""
        ref = self.base_ref()
        if self._has_image(ref):
            return ref
        rootfs = os.path.join(self.dir, f"debian-rootfs-{self.base_key()}.tar")
        if not os.path.exists(rootfs):
            say(f"building a Debian {DEBIAN_SUITE} rootfs with mmdebstrap ({', '.join(DEBIAN_PACKAGES)}) ...")
            t0 = time.monotonic()
            tmp = rootfs + ".tmp.tar"
            subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", "--mode=root",
                            "--include=" + ",".join(DEBIAN_PACKAGES),
                            "--customize-hook=rm -rf \"$1\"/var/cache/apt/archives/*.deb \"$1\"/var/lib/apt/lists/*",
                            DEBIAN_SUITE, tmp, apt_sources()], check=True)
            os.replace(tmp, rootfs)
            say(f"rootfs in {time.monotonic() - t0:.0f}s")
        ctr = self.buildah("from", "scratch", capture_output=True, text=True).stdout.strip()
        try:
            self.buildah("add", "--quiet", ctr, rootfs, "/")
            self.buildah("config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                         "--env", "LANG=C.UTF-8", "--cmd", "python3", ctr)
            self.buildah("commit", "--quiet", ctr, ref, capture_output=True)
        finally:
            self.buildah("rm", ctr, capture_output=True, check=False)
        return ref

    def worker_archive(self) -> str:
        out = os.path.join(self.dir, f"dial-worker-{self.worker_key()}.tar")
        if os.path.exists(out):
            return out
        base = self.base_image()
        ref = worker_ref()
        say(f"building {ref} from worker_image/Dockerfile with buildah (BASE={base}) ...")
        t0 = time.monotonic()
        pip_conf = os.path.join(self.cache, "buildah", "pip.conf")
        with open(pip_conf, "w") as f:
            # PyPI may sit behind a TLS-inspecting proxy whose CA only the host's bundle holds
            f.write(f"[global]\ncert = {HOST_CA_BUNDLE}\ndisable-pip-version-check = true\n")
        self.buildah("bud", "--quiet", "--layers", "--isolation", "chroot", "--network", "host", "--pull=never",
                     "--build-arg", f"BASE={base}",
                     "--ignorefile", os.path.join(REPO, "worker_image", "Dockerfile.dockerignore"),
                     "-v", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro", "-v", f"{pip_conf}:/etc/pip.conf:ro",
                     "-f", os.path.join(REPO, "worker_image", "Dockerfile"), "-t", ref, REPO,
                     stdout=subprocess.DEVNULL)
        self.save(ref, out)
        say(f"built {ref} in {time.monotonic() - t0:.0f}s -> {out}")
        self.prune("dial-worker-", keep=out, exclude="dial-worker-noshell-")
        return out

    def noshell_archive(self) -> str:
        """The worker image without a shell, tee or mkfifo (as a distroless training image is)."""
        out = os.path.join(self.dir, f"dial-worker-noshell-{self._key(self.worker_key(), 'noshell')}.tar")
        if os.path.exists(out):
            return out
        worker = self.worker_archive()
        if not self._has_image(worker_ref()):
            self.buildah("pull", "--quiet", f"docker-archive:{worker}", capture_output=True)
        ctr = self.buildah("from", "--pull=never", "--quiet", worker_ref(), capture_output=True, text=True).stdout.strip()
        try:
            root = self.buildah("mount", ctr, capture_output=True, text=True).stdout.strip()
            for name in ("sh", "dash", "bash", "tee", "mkfifo"):  # Debian: /bin is /usr/bin
                path = os.path.join(root, "usr", "bin", name)
                if os.path.lexists(path):
                    os.remove(path)
            self.buildah("umount", ctr, capture_output=True)
            self.buildah("commit", "--quiet", ctr, NOSHELL_REF, capture_output=True)
            self.save(NOSHELL_REF, out)
        finally:
            self.buildah("rm", ctr, capture_output=True, check=False)
            self.release_mounts()
        self.prune("dial-worker-noshell-", keep=out)
        return out

    def prune(self, prefix: str, keep: str, n: int = 2, exclude: str | None = None) -> None:
        old = sorted((os.path.join(self.dir, x) for x in os.listdir(self.dir)
                      if x.startswith(prefix) and not (exclude and x.startswith(exclude))),
                     key=os.path.getmtime, reverse=True)
        for path in [x for x in old if x != keep][n - 1:]:
            os.remove(path)

    def archives(self) -> dict[str, str]:
        try:
            return {PAUSE_IMAGE: self.pause_archive(), worker_ref(): self.worker_archive()}
        finally:
            self.release_mounts()

    def release_mounts(self) -> None:
        """Unmount what buildah's store left mounted (its overlay directory, layers of an interrupted
        build): the archives are what the node uses, and nothing may stay mounted after a build.
        Not while another build uses the store (another checkout's tests): its mounts are in use."""
        root = os.path.realpath(self.buildah_root)
        if _other_buildah_running(root):
            return
        self.buildah("umount", "--all", capture_output=True, check=False)
        # Passes: a mount made before the store's bind mount of its overlay directory is hidden under it,
        # and only reachable (unmountable) once that bind mount is gone.
        for _ in range(4):
            with open("/proc/self/mountinfo") as f:
                mounts = [mp for mp in (line.split()[4].replace("\\040", " ") for line in f)
                          if mp == root or mp.startswith(root + "/")]
            if not mounts:
                return
            for mp in sorted(mounts, key=len, reverse=True):
                subprocess.run(["umount", "-l", mp], capture_output=True)


def _other_buildah_running(root: str) -> bool:
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"buildah" and root.encode() in argv:
            return True
    return False


def apt_sources() -> str:
    """mmdebstrap's mirror argument: a sources file of this machine that names Debian, or Debian's mirror."""
    for path in APT_SOURCES_CANDIDATES:
        try:
            with open(path) as f:
                if "debian" in f.read():
                    return path
        except OSError:
            pass
    return DEBIAN_MIRROR


def write_single_layer_archive(out: str, ref: str, files: dict[str, tuple[bytes, int]],
                               entrypoint: list[str]) -> None:
    """A docker-archive (docker save format) with one layer holding `files` (name -> (data, mode))."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, (data, mode) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            t.addfile(info, io.BytesIO(data))
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": entrypoint},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "hack/realnode/images.py"}],
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [ref], "Layers": ["layer.tar"]}]).encode()
    tmp = out + ".tmp"
    with tarfile.open(tmp, "w") as t:
        for name, data in (("layer.tar", layer_bytes), (config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            t.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)


def import_images(ctr_bin: str, sock: str, archives: dict[str, str]) -> None:
    """Import into containerd's k8s.io namespace (what the CRI plugin serves the kubelet)."""
    for path in archives.values():
        subprocess.run([ctr_bin, "--address", sock, "--namespace", "k8s.io", "images", "import", path],
                       check=True, capture_output=True)


def ensure_tools() -> None:
    missing = [t for t in ("buildah", "mmdebstrap") if not shutil.which(t)]
    if missing:
        sys.exit(f"[images] {', '.join(missing)} not found: run hack/install-node-deps.sh")
