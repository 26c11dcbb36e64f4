"""``GET /api/openapi.json``: a valid OpenAPI 3.1 document that names exactly the routes the
server serves, and that real answers of a real server on loopback match, status code, media type,
headers and body (checked with jsonschema: the document's schemas are JSON Schema 2020-12)."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from controller.config import offset_limit_um
from controller.errors import FocuslockError
from controller.service.api import FOCUS_TIMEOUT_MAX_S, LOG_LIMIT_MAX, MAX_BODY, ROUTES
from controller.service.hardware import Hardware
from tests.service.conftest import Client

DOCUMENT_URI = "urn:focuslock:openapi"


class Documented:
    """The document a server serves, and the check of one of its answers against it."""

    def __init__(self, client: Client) -> None:
        code, self.document, response = client.request("GET", "/api/openapi.json")
        assert code == 200 and response.getheader("Content-Type") == "application/json"
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self.registry: Registry = Registry().with_resource(DOCUMENT_URI, resource)
        self.client = client

    def answer(self, method: str, path: str, code: int) -> dict[str, Any]:
        """The documented answer for ``code``: the operation's own, or the document's 404 and
        405 for a path or method it does not list."""
        item = self.document["paths"].get(path.split("?")[0])
        responses = self.document["components"]["responses"]
        if item is None:
            assert code == 404, f"{method} {path}: {code} for a path the document lacks"
            return responses["NotFound"]
        operation = item.get(method.lower())
        if operation is None:
            assert code == 405, f"{method} {path}: {code} for a method the document lacks"
            return responses["MethodNotAllowed"]
        assert str(code) in operation["responses"], f"{method} {path}: {code} is undocumented"
        answer = operation["responses"][str(code)]
        if "$ref" in answer:
            answer = responses[answer["$ref"].rsplit("/", 1)[1]]
        return answer

    def check(self, method: str, path: str, body: Any = None, *, expect: int,
              content_type: str | None = "application/json",
              raw: bytes | None = None) -> Any:
        """Send the request; the answer must have status ``expect`` and match the document."""
        code, data, response = self.client.request(method, path, body,
                                                   content_type=content_type, raw=raw)
        assert code == expect, f"{method} {path}: {code} {data}"
        answer = self.answer(method, path, code)
        media = response.getheader("Content-Type", "").split(";")[0]
        assert media in answer["content"], f"{method} {path}: {media} is undocumented"
        for header in answer.get("headers", {}):
            assert response.getheader(header), f"{method} {path}: no {header} header"
        if media == "application/json":
            schema = {"$ref": DOCUMENT_URI + answer["content"][media]["schema"]["$ref"]} \
                if "$ref" in answer["content"][media]["schema"] \
                else answer["content"][media]["schema"]
            Draft202012Validator(schema, registry=self.registry).validate(data)
        return data


@pytest.fixture
def documented(running) -> Documented:
    return Documented(running.client)


def test_the_document_is_valid_openapi_3_1_with_the_limits_the_code_enforces(running,
                                                                              documented):
    document = documented.document
    validate(document)  # openapi-spec-validator: the whole document, 3.1 rules
    assert document["openapi"] == "3.1.0"
    paths = document["paths"]
    offset = paths["/api/offset"]["put"]["requestBody"]["content"]["application/json"]
    limit = offset_limit_um(running.service.config.lock)
    assert offset["schema"]["properties"]["offset_um"] == {
        "type": "number", "minimum": -limit, "maximum": limit,
        "description": "within ± half of lock.travel_window_um"}
    focus = paths["/api/focus"]["post"]["requestBody"]["content"]["application/json"]
    assert focus["schema"]["properties"]["timeout_s"]["maximum"] == FOCUS_TIMEOUT_MAX_S
    limit_query = next(p for p in paths["/api/log"]["get"]["parameters"] if p["name"] == "limit")
    assert limit_query["schema"]["maximum"] == LOG_LIMIT_MAX
    assert str(MAX_BODY) in document["info"]["description"]
    for path, item in paths.items():
        for method, operation in item.items():
            changes = method in ("post", "put")
            assert ("415" in operation["responses"]) is changes, (method, path)
            assert ({"bearer": []} in operation["security"]) and (
                ({} in operation["security"]) is not changes), (method, path)


def served_operations() -> set[tuple[str, str]]:
    return {(path, method.lower()) for path, methods in ROUTES.items() for method in methods} \
        | {("/", "get")}  # the dashboard, served outside ROUTES


def test_every_route_served_is_documented(documented):
    documented_ops = {(path, method) for path, item in documented.document["paths"].items()
                      for method in item}
    assert served_operations() - documented_ops == set()


def test_nothing_is_documented_that_is_not_served(documented):
    documented_ops = {(path, method) for path, item in documented.document["paths"].items()
                      for method in item}
    assert documented_ops - served_operations() == set()


def test_real_answers_match_the_document(documented):
    check = documented.check
    status = check("GET", "/api/status", expect=200)
    assert status["last_step"] is None and status["model"]["id"]
    check("GET", "/api/health", expect=200)
    check("GET", "/", expect=200)
    check("GET", "/metrics", expect=200)
    check("GET", "/api/histogram", expect=409)  # no frame read yet
    report = check("POST", "/api/focus", {"timeout_s": 30}, expect=200)
    check("GET", "/api/histogram", expect=200)
    assert report["success"] is True
    page = check("GET", "/api/log?since=0&limit=1", expect=200)
    assert len(page["records"]) == 1 and page["more"] is True
    assert check("GET", "/api/status", expect=200)["last_step"]["seq"] == report["steps"]
    check("PUT", "/api/offset", {"offset_um": 1.5}, expect=200)
    check("POST", "/api/lock/start", expect=200)
    check("POST", "/api/lock/start", expect=409)  # already running
    check("POST", "/api/focus", expect=409)  # while the lock runs
    check("POST", "/api/drive/home", expect=409)  # the virtual drive never loses its place
    check("POST", "/api/stop", expect=200)
    check("POST", "/api/model/reload", expect=503)  # the bundle does not fit 128² test frames

    # refusals: each an Error, with the headers the document promises
    check("PUT", "/api/offset", {"offset_um": 1e6}, expect=400)
    check("PUT", "/api/offset", {}, expect=400)
    check("POST", "/api/focus", {"timeout_s": 0}, expect=400)
    check("GET", "/api/log?limit=0", expect=400)
    check("POST", "/api/focus", raw=b"{not json", expect=400)
    check("GET", "/api/nothing-here", expect=404)
    check("GET", "/api/focus", expect=405)
    check("DELETE", "/api/status", expect=405)
    check("POST", "/api/focus", raw=b"{" + b" " * (64 * 1024) + b"}", expect=413)
    check("POST", "/api/focus", raw=b"{}", content_type="text/plain", expect=415)
    check("POST", "/api/focus", raw=b"{}", content_type=None, expect=415)


def test_a_box_whose_hardware_does_not_open_answers_as_documented(start_service):
    def unplugged() -> Hardware:
        raise FocuslockError("focus board: no board on /dev/focusboard")

    documented = Documented(start_service(hardware=unplugged).client)
    check = documented.check
    status = check("GET", "/api/status", expect=200)
    assert status["state"] == "fault" and status["model"] == {} and status["z_um"] is None
    assert check("GET", "/api/health", expect=503)["healthy"] is False
    check("POST", "/api/lock/start", expect=503)
    check("POST", "/api/focus", expect=503)


def test_a_focus_now_that_outlasts_its_timeout_matches_the_document(hanging_service):
    running, model = hanging_service
    documented = Documented(running.client)
    model.free.clear()
    check = documented.check
    check("POST", "/api/focus", {"timeout_s": 0.5}, expect=504)
    assert model.stuck.wait(30)
    check("PUT", "/api/drive/position", {"z_um": 0}, expect=409)  # focus now still runs
    model.free.set()
    running.client.wait_for(lambda s: s["mode"] == "idle", what="focus now over")
    check("POST", "/api/stop", expect=200)
