"""The service's route table: every route that shows data or changes anything names its caller
as an authentication dependency, so a new route cannot forget the gate."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")

from fastapi.routing import APIRoute  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from voterolls.service.app import create_app  # noqa: E402

#: Routes anyone may call: the health check and signing in and out.
PUBLIC = {"/healthz", "/", "/login", "/logout"}


def _routes(tmp_path) -> list[APIRoute]:
    app = create_app(tmp_path / "w")
    return [r for r in app.routes if isinstance(r, APIRoute)]


def test_every_non_public_route_has_a_caller_dependency(tmp_path):
    unguarded = [
        f"{sorted(r.methods)} {r.path}"
        for r in _routes(tmp_path)
        if r.path not in PUBLIC
        and not any(d.call is not None and d.call.__name__ == "caller" for d in r.dependant.dependencies)
    ]
    assert unguarded == []


def test_the_dependency_refuses_before_the_route_runs(tmp_path):
    client = TestClient(create_app(tmp_path / "w"))
    api = client.get("/api/states/NC/submissions")
    assert api.status_code == 401
    assert "Bearer" in api.headers["www-authenticate"]
    page = client.get("/states/NC", follow_redirects=False)
    assert page.status_code in (302, 303) and page.headers["location"].startswith("/login")
    assert client.get("/api/aggregates", headers={"Authorization": "Bearer nope"}).status_code == 401
