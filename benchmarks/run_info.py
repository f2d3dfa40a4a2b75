"""What a benchmark's printed header says about the run: package versions and the machine's load."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version


def package_versions(packages: list[str] | tuple[str, ...]) -> str:
    return ", ".join(f"{p} {_version(p)}" for p in packages)


def machine(workers: str) -> str:
    """`x86_64, 2 CPUs, <workers>, load average at the end 1.0/1.1/1.2; Python 3.11.7`."""
    load = os.getloadavg()
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, {workers}, load average at the end "
            f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}; Python {platform.python_version()}")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"
