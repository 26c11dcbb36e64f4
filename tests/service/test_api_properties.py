"""Generated request bodies against every POST and PUT endpoint of a real server on loopback.

Bodies are raw bytes: JSON objects with the fields the API knows, unknown ones or none, numbers
written as tokens Python would turn into infinity (``1e400``), NaN and Infinity, 40- and
5000-digit integers, strings, nested arrays and objects, nesting thousands deep, non-objects, no
body, bytes that are no JSON at all. Whatever comes, the answer is a 2xx, or a 4xx with a JSON
``{"error": ...}`` (or the 504 of a focus now that outlasts the timeout it was given, which goes
on); never a 500 or a 503. And the drive never leaves the window of the run that moved it: the
model misreads the sample, so every run pushes towards its window's edge.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.service.conftest import Running, oracle_hardware, service_config

ENDPOINTS = [("POST", "/api/focus"), ("POST", "/api/lock/start"), ("POST", "/api/lock/stop"),
             ("POST", "/api/stop"), ("PUT", "/api/offset"), ("POST", "/api/drive/home"),
             ("PUT", "/api/drive/position"), ("POST", "/api/drive/clear-fault")]
FIELDS = ["timeout_s", "offset_um", "z_um"]
WINDOW_HALF_UM = 40.0  # the lock's (travel_window_um = 80, set below) and focus now's (default)

NUMBERS = st.one_of(
    st.integers(-10**45, 10**45).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
    st.floats(-700.0, 700.0).map(json.dumps),
    st.sampled_from(["1e400", "-1e400", "1e-400", "NaN", "Infinity", "-Infinity", "-0", "0",
                     "0.001", "1e-300", "600", "600.0000001", "40", "-40.5", "1" * 40,
                     "9" * 5000]))
SCALARS = NUMBERS | st.text(max_size=8).map(json.dumps) | st.sampled_from(
    ["true", "false", "null"])
NAMES = st.sampled_from(FIELDS) | st.text(max_size=6)


def json_array(items: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(items, max_size=3).map(lambda xs: "[" + ",".join(xs) + "]")


def json_object(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.dictionaries(NAMES, values, max_size=3).map(
        lambda d: "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in d.items()) + "}")


VALUES = st.recursive(SCALARS, lambda inner: json_array(inner) | json_object(inner),
                      max_leaves=6)
ACCEPTABLE = st.one_of(  # bodies each endpoint may accept, so that runs start and move
    st.sampled_from([b"", b"{}", b" "]),
    st.builds(lambda name, value: json.dumps({name: value}).encode(), st.sampled_from(FIELDS),
              st.floats(-60.0, 60.0) | st.floats(0.05, 5.0)),
)
BODIES = ACCEPTABLE | st.one_of(
    st.builds(lambda name, number: f'{{"{name}": {number}}}', st.sampled_from(FIELDS), NUMBERS),
    json_object(VALUES),
    VALUES,
    st.integers(1, 20_000).map(lambda depth: "[" * depth + "]" * depth),
).map(str.encode) | st.binary(max_size=16)


RUNS = st.tuples(st.sampled_from([("POST", "/api/focus"), ("POST", "/api/lock/start"),
                                  ("POST", "/api/stop")]), st.just(b""))
REQUESTS = st.tuples(st.sampled_from(ENDPOINTS), BODIES) | RUNS  # runs often: moves to watch


@dataclass
class RunWindows:
    """Follows the step records: a run starts at step 1, its window is centred where it began;
    checks that no step left the drive outside it."""

    seq: int = 0
    start_z_um: float | None = None
    at_edge: int = 0  # steps a window cut short or refused: the windows were put to the test

    def check(self, page: dict) -> None:
        assert page["missed"] == 0 and not page["more"]
        for record in page["records"]:
            if record["step"] == 1:
                self.start_z_um = record["z_um"]
            if record["z_um"] is not None and self.start_z_um is not None:
                ended = record["z_um"] + record["move_um"]
                assert abs(ended - self.start_z_um) <= WINDOW_HALF_UM + 1e-9, record
            self.at_edge += record["limited"].endswith("_window") or "window" in record["rejected"]
            self.seq = record["seq"]


@dataclass
class Misread:
    """One service for all the generated requests, read by a model that misreads the sample."""

    running: Running
    windows: RunWindows
    answers: dict[int, int]  # HTTP status: how many


@pytest.fixture
def misread(start_service, tmp_path) -> Iterator[Misread]:
    config = service_config(tmp_path, lock={"travel_window_um": 2 * WINDOW_HALF_UM},
                            gates={"saturated_fraction": 1.0})  # far out of focus is trusted
    running = start_service(config, hardware=lambda: oracle_hardware(
        config, scale=-1.0, trained_range_um=1e3))
    served = Misread(running, RunWindows(), {})
    yield served
    client = running.client
    client.post("/api/stop")
    _, page = client.get(f"/api/log?since={served.windows.seq}&limit=500")
    served.windows.check(page)
    answers = served.answers
    assert answers.get(200, 0) >= 10 and answers.get(400, 0) >= 30, answers  # both were tried


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow,
                                                   HealthCheck.function_scoped_fixture])
@given(request=REQUESTS)
def test_property_any_body_to_any_endpoint_is_answered_cleanly_and_moves_stay_in_windows(
        misread: Misread, request: tuple[tuple[str, str], bytes]) -> None:
    client = misread.running.client
    (method, path), body = request
    code, reply, _ = client.request(method, path, raw=body)
    misread.answers[code] = misread.answers.get(code, 0) + 1
    assert code in (200, 400, 409, 504), (code, reply)
    assert isinstance(reply, dict)
    if code != 200:
        assert isinstance(reply.get("error"), str) and reply["error"]
    _, page = client.get(f"/api/log?since={misread.windows.seq}&limit=500")
    misread.windows.check(page)
