"""Small builders for Kubernetes objects shared by the hub and converter renderers (plain dicts)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

UMH_NAMESPACE = "united-manufacturing-hub"  # the chart hard-codes it in its bridges and service names
CONVERTER_NAMESPACE = "umh-converters"
MANAGED_BY = {"app.kubernetes.io/managed-by": "umhctl"}


def metadata(name: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {**MANAGED_BY, **(labels or {})}
    return meta


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata(name)}


def secret(name: str, ns: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata(name, ns), "type": "Opaque", "stringData": data}


def config_map(name: str, ns: str, data: dict[str, str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(name, ns, labels), "data": data}


def slug(text: str, max_length: int = 40) -> str:
    """A stable identifier from a name: Grafana uids and Kubernetes names derived from blueprint names."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "x"
    if len(cleaned) <= max_length:
        return cleaned
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return cleaned[: max_length - 9].rstrip("-") + "-" + digest


def content_hash(*parts: Any) -> str:
    """A short hash of data, used to name immutable objects (Jobs) so a change creates a new one."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:10]
