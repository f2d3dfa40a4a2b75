"""The operator creates Jobs with strict field validation: an unknown field is an error, not dropped."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import kubernetes.client as k8s

from dial.kube.client import Kube


class Answer:
    status, data = 201, b'{"metadata": {"name": "j"}}'

    def read(self) -> None:
        pass


def test_jobs_are_created_with_strict_field_validation(monkeypatch) -> None:
    api = k8s.ApiClient(k8s.Configuration(host="https://api.invalid"))
    sent: list[tuple[str, str]] = []

    def call_api(method: str, url: str, *args: Any, **kwargs: Any) -> Answer:
        sent.append((method, url))
        return Answer()

    monkeypatch.setattr(api, "call_api", call_api)
    created = Kube(api).create_job("ml", {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}})
    assert created == {"metadata": {"name": "j"}}
    [(method, url)] = sent
    assert method == "POST" and urlparse(url).path == "/apis/batch/v1/namespaces/ml/jobs"
    assert parse_qs(urlparse(url).query) == {"fieldValidation": ["Strict"]}
