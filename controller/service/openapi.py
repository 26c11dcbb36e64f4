"""The API's OpenAPI 3.1 document (``GET /api/openapi.json``), built from the code it describes.

Built, not kept as a file, so it cannot drift: the ranges are the limits api.py enforces (the
offset's is the config's own rule), states and modes are the enums' values, a step entry's
fields are StepRecord's. The tests check the rest: every route of ``api.ROUTES`` is here and
nothing else, and real responses of a real server validate against these schemas, which are
closed (a key added to a response and not here fails them). 3.1 because its schemas are plain
JSON Schema (2020-12): the tests, and any client, check responses with a JSON Schema validator
as they stand.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any

from controller import __version__
from controller.config import BoardBackend, CameraBackend
from controller.loop import LoopState
from controller.runlog import StepRecord
from controller.service import calibration as cal
from controller.service.status import ServiceMode

JSON = "application/json"
Schema = dict[str, Any]


@dataclass(frozen=True)
class ApiLimits:
    """What api.py enforces on requests, as the document states it."""

    max_body: int  # bytes
    log_limit_default: int
    log_limit_max: int
    focus_timeout_default_s: float
    focus_timeout_max_s: float
    offset_limit_um: float  # |offset_um| at most this (the config's rule)


def openapi_document(limits: ApiLimits) -> dict[str, Any]:
    """The whole document, as ``GET /api/openapi.json`` serves it."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "focuslock", "version": __version__,
                 "summary": "The focus-lock box: status, focus now, the lock, its offset, the "
                            "drive, the model (docs/service.md).",
                 "description": _RULES.format(max_body=limits.max_body)},
        "paths": _paths(limits),
        "components": {"schemas": _SCHEMAS, "responses": _RESPONSES,
                       "securitySchemes": {"bearer": {
                           "type": "http", "scheme": "bearer",
                           "description": "The token of [service] token_file, as "
                                          "`Authorization: Bearer <token>`."}}},
    }


_RULES = """\
JSON in and out; lengths in µm, times in seconds; `defocus_um = z_focus - z`, and the lock holds \
`z = z_focus + offset_um`. A refused request gets `{{"error": "..."}}` naming the problem, and \
nothing moves. Besides the answers listed per operation, any path answers: 404 for a path not \
listed here; 405 with `Allow` for a method not listed for its path; 411 for a chunked body; 413 \
for a body over {max_body} bytes; 408 for a body too slow to arrive; 421 for a Host header that \
is not one of the box's names; 503 with `Retry-After` when too many connections are open. \
POST and PUT need `Content-Type: application/json` (415 otherwise) and the bearer token (401 \
with `WWW-Authenticate: Bearer` otherwise); reads need it too when [service] \
read_requires_token is set."""


def _ref(kind: str, name: str) -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json_content(schema: Schema) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


def _answer(description: str, schema: Schema, media: str = JSON) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema}}}


def _error(description: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    answer = _answer(description, _ref("schemas", "Error"))
    if headers:
        answer["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                             for name, text in headers.items()}
    return answer


_RESPONSES: dict[str, Any] = {
    "BadRequest": _error("Bad JSON, a body that is not an object, an unknown field or query "
                         "parameter, a missing field, a value of the wrong type or out of "
                         "range, a body on a GET."),
    "Unauthorized": _error("No token, or not the box's.",
                           {"WWW-Authenticate": 'Bearer realm="focuslock"'}),
    "NotFound": _error("No such path."),
    "MethodNotAllowed": _error("A method the path does not take.",
                               {"Allow": "the methods it takes"}),
    "Conflict": _error("The request contradicts what runs (the message says what): focus now "
                       "runs or stops, the lock runs, or the drive has no reference to lose."),
    "LengthRequired": _error("A chunked body: send Content-Length."),
    "RequestTimeout": _error("The body did not arrive within its deadline after the headers; "
                             "the connection is closed."),
    "TooLarge": _error("A body over the size limit."),
    "UnsupportedMediaType": _error("A POST or PUT without Content-Type: application/json."),
    "MisdirectedRequest": _error("A Host header that is not one of the box's names."),
    "InternalError": _error("A bug: the message names the exception."),
    "Unavailable": _error("The hardware is in fault or cannot be opened, a model to reload does "
                          "not load, or the loop thread does not answer."),
    "StillRunning": _error("Focus now did not finish within timeout_s; it goes on (see "
                           "/api/status) until it ends or POST /api/stop ends it."),
}


def _operation(summary: str, answers: dict[str, Any], *, changes: bool,
               body: Schema | None = None, body_required: bool = False,
               parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An operation with the answers every request may get besides its own (``changes``: a
    POST or PUT, which needs the token and a JSON content type)."""
    common = {"400": "BadRequest", "401": "Unauthorized", "408": "RequestTimeout",
              "411": "LengthRequired",
              "413": "TooLarge", "421": "MisdirectedRequest", "500": "InternalError"}
    if changes:
        common["415"] = "UnsupportedMediaType"
    responses = {**{code: _ref("responses", name) for code, name in common.items()}, **answers}
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": dict(sorted(responses.items())),
        # mutating routes always need the token; reads when the config says so
        "security": [{"bearer": []}] if changes else [{}, {"bearer": []}],
    }
    if parameters:
        operation["parameters"] = parameters
    if changes:
        operation["requestBody"] = {
            "required": body_required,
            "content": _json_content(body if body is not None else _NO_FIELDS)}
    return operation


_NO_FIELDS: Schema = {"type": "object", "additionalProperties": False,
                      "description": "No fields: an empty body or {}."}


def _command(summary: str, *, method: str = "post", conflict: bool = True,
             body: Schema | None = None) -> dict[str, Any]:
    """A command that answers with the status: 503 when the hardware or the loop thread fails
    it, 409 (``conflict``) while focus now runs or the command contradicts what runs;
    ``body``: its required fields (none by default)."""
    answers: dict[str, Any] = {"200": _answer("Done: the status after it.",
                                              _ref("schemas", "Status")),
                               "503": _ref("responses", "Unavailable")}
    if conflict:
        answers["409"] = _ref("responses", "Conflict")
    return {method: _operation(summary, answers, changes=True, body=body,
                               body_required=body is not None)}


def _integer_query(name: str, description: str, low: int, default: int,
                   high: int | None = None) -> dict[str, Any]:
    schema: Schema = {"type": "integer", "minimum": low, "default": default}
    if high is not None:
        schema["maximum"] = high
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


def _one_number(name: str, description: str, bounds: Schema) -> Schema:
    return {"type": "object", "required": [name], "additionalProperties": False,
            "properties": {name: {"type": "number", "description": description, **bounds}}}


def _look(summary: str, answer: dict[str, Any]) -> dict[str, Any]:
    """A read of the latest autofocus frame: 409 until the loop has read one."""
    return _operation(summary, {"200": answer, "409": _error(
        "No frame has been read yet: focus now or start the lock first.")}, changes=False)


def _paths(limits: ApiLimits) -> dict[str, Any]:
    offset = limits.offset_limit_um
    return {
        "/": {"get": _operation("The dashboard: one self-contained page.",
                                {"200": _answer("The page.", {"type": "string"}, "text/html")},
                                changes=False)},
        "/api/status": {"get": _operation(
            "The service's status.", {"200": _answer("The status.", _ref("schemas", "Status"))},
            changes=False)},
        "/api/health": {"get": _operation(
            "Whether the loop thread is alive, making progress and not in fault.",
            {"200": _answer("Healthy.", _ref("schemas", "Health")),
             "503": _answer("Not healthy; reason says why.", _ref("schemas", "Health"))},
            changes=False)},
        "/api/log": {"get": _operation(
            "Step records after a sequence number, oldest first.",
            {"200": _answer("A page of records.", _ref("schemas", "LogPage"))}, changes=False,
            parameters=[
                _integer_query("since", "records with a seq above this (0: the oldest kept)",
                               0, 0),
                _integer_query("limit", "records at most", 1, limits.log_limit_default,
                               limits.log_limit_max)])},
        "/api/events": {"get": _operation(
            "Live events (server-sent events): `state` when the state, mode, a fault or a "
            "setting changes (data: the status), `step` for each step (data: a log record, id: "
            "its seq), `missed` when records to replay fell out of the history. Resumes after "
            "the step Last-Event-ID names, else after ?since=, else from now.",
            {"200": _answer("The event stream, until the client or the service ends it.",
                         {"type": "string"}, "text/event-stream"),
             "503": _ref("responses", "Unavailable")},
            changes=False,
            parameters=[
                _integer_query("since", "replay the steps with a seq above this first", 0, 0),
                {"name": "Last-Event-ID", "in": "header", "required": False,
                 "description": "as an EventSource sends it on reconnecting; wins over since",
                 "schema": {"type": "integer", "minimum": 0}}])},
        "/metrics": {"get": _operation(
            "Prometheus metrics (docs/service.md lists them).",
            {"200": _answer("The Prometheus text format.", {"type": "string"}, "text/plain")},
            changes=False)},
        "/api/openapi.json": {"get": _operation(
            "This document.", {"200": _answer("OpenAPI 3.1.", {"type": "object"})},
            changes=False)},
        "/api/frame.png": {"get": _look(
            "The latest autofocus frame the loop read, block-averaged to at most 512 pixels a "
            "side, contrast-stretched (0.5 and 99.5 percentiles), 8-bit grey.",
            _answer("The frame.", {"type": "string"}, "image/png"))},
        "/api/spectrum.png": {"get": _look(
            "The log magnitude of that frame's centred spectrum (its central square of at most "
            "512 pixels), with the pupil circles the bundle's optics and LED pattern predict "
            "(red) and the features' crop (yellow).",
            _answer("The spectrum.", {"type": "string"}, "image/png"))},
        "/api/histogram": {"get": _look(
            "That frame's histogram over [0, full scale], its saturated fraction and mean "
            "against the frame gates' limits.",
            _answer("The histogram.", _ref("schemas", "Histogram")))},
        "/api/alignment": {"get": _operation(
            "The alignment check on that frame: the pupil circles fitted in its spectrum, the "
            "autofocus LED's NA vector against the bundle's, the move in mm that puts it there "
            "and that move as a sentence (docs/retrofit.md). Takes seconds.",
            {"200": _answer("Where the LED is.", _ref("schemas", "Alignment")),
             "409": _error("No frame has been read yet: focus now or start the lock first."),
             "422": _error("The frame does not show the pupil circles (empty field, wrong "
                           "exposure, another pattern lit).")},
            changes=False)},
        "/api/focus": {"post": _operation(
            "Focus now: move until a trusted reading is within focus.tolerance_um; 200 with "
            "the report also when it gives up (success false says why).",
            {"200": _answer("The report.", _ref("schemas", "FocusReport")),
             "409": _ref("responses", "Conflict"), "503": _ref("responses", "Unavailable"),
             "504": _ref("responses", "StillRunning")},
            changes=True, body={
                "type": "object", "additionalProperties": False,
                "properties": {"timeout_s": {
                    "type": "number", "exclusiveMinimum": 0,
                    "maximum": limits.focus_timeout_max_s,
                    "default": limits.focus_timeout_default_s,
                    "description": "how long to wait for the report"}}})},
        "/api/lock/start": _command("Start the continuous lock."),
        "/api/lock/stop": _command("Stop the lock (LEDs off)."),
        "/api/stop": _command("Stop whatever runs: focus now between two moves, or the lock.",
                              conflict=False),
        "/api/offset": _command(
            "Hold z = z_focus + offset_um from the next step on.", method="put",
            body=_one_number("offset_um", "within ± half of lock.travel_window_um",
                             {"minimum": -offset, "maximum": offset})),
        "/api/drive/home": _command("Seek the drive's min endstop."),
        "/api/drive/position": _command(
            "Declare where the drive is now (not a move).", method="put",
            body=_one_number("z_um", "within the drive's travel (travel_um in the status)",
                             {})),
        "/api/drive/clear-fault": _command("Clear a fault the drive latched."),
        "/api/model/reload": _command("Read with the bundle the config names now."),
        "/api/model/rollback": _command(
            "Make the previous installed bundle current again (the current one becomes "
            "previous) and read with it."),
        **_calibration_paths(),
    }


def _calibration_paths() -> dict[str, Any]:
    """The guided calibration (docs/calibrate.md, "From the dashboard")."""
    job = _answer("The calibration job.", _ref("schemas", "Calibration"))
    refused = {"409": _ref("responses", "Conflict"), "503": _ref("responses", "Unavailable")}
    return {
        "/api/calibration": {
            "get": _operation("The latest calibration job: its phase, progress, ground-truth "
                              "curves and result.",
                              {"200": _answer("The job, or phase none.",
                                              _ref("schemas", "LatestCalibration"))},
                              changes=False),
            "post": _operation(
                "Start a guided calibration of the bundle the box reads: collect the stacks "
                "(waiting for POST /api/calibration/next between them), then fine-tune and "
                "compare in a child process. 409 while anything runs or another calibration "
                "does; 503 without TensorFlow.",
                {"202": _answer("Started: the job.", _ref("schemas", "Calibration")), **refused},
                changes=True, body={
                    "type": "object", "additionalProperties": False, "properties": {
                        "stacks": {"type": "integer", "minimum": cal.MIN_STACKS,
                                   "maximum": cal.MAX_STACKS, "default": cal.DEFAULT_STACKS,
                                   "description": "one field each; the last is held out"},
                        "range_um": {"type": "number", "exclusiveMinimum": 0,
                                     "maximum": cal.MAX_RANGE_UM,
                                     "default": cal.DEFAULT_RANGE_UM,
                                     "description": "planes from -range_um to +range_um "
                                                    "around the drive's z"},
                        "step_um": {"type": "number", "exclusiveMinimum": 0,
                                    "maximum": cal.MAX_STEP_UM, "default": cal.DEFAULT_STEP_UM,
                                    "description": f"plane spacing; {cal.MIN_PLANES} to "
                                                   f"{cal.MAX_PLANES} planes a stack"},
                        "max_epochs": {"type": "integer", "minimum": 1,
                                       "maximum": cal.MAX_EPOCHS,
                                       "description": "fine-tuning epochs at most (default: "
                                                      "focuslock calibrate's)"}}})},
        "/api/calibration/next": {"post": _operation(
            "The user has moved to a new field (the twin: its next sample): collect the next "
            "stack. 409 unless the job waits for it.", {"200": job, **refused}, changes=True)},
        "/api/calibration/cancel": {"post": _operation(
            "End the calibration with nothing installed: LEDs off and the drive back where "
            "it started, or the fine-tuning's process killed.", {"200": job, **refused},
            changes=True)},
        "/api/calibration/install": {"post": _operation(
            "Install the fine-tuned bundle (the previous one kept for POST "
            "/api/model/rollback) and read with it. 409 unless the job is ready, while "
            "something runs, or when the bundle reads the held-out stack no better and "
            "force is not set.", {"200": job, **refused}, changes=True,
            body={"type": "object", "additionalProperties": False, "properties": {
                "force": {"type": "boolean", "default": False,
                          "description": "install a bundle that reads no better"}}})},
        "/api/calibration/figure.png": {"get": _operation(
            "The held-out stack read by the base and by the fine-tuned bundle, predicted "
            "against true defocus, side by side.",
            {"200": _answer("The figure.", {"type": "string"}, "image/png"),
             "409": _error("No comparison yet.")}, changes=False)},
    }


def _nullable(schema: Schema) -> Schema:
    return {**schema, "type": [schema["type"], "null"]}


def _schema_of(kind: Any) -> Schema:
    """A StepRecord field's type as JSON Schema; a float may be null (NaN is sent as null)."""
    if isinstance(kind, types.UnionType):  # X | None
        (inner,) = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return _nullable(_schema_of(inner)) if inner is not float else _schema_of(inner)
    if kind is float:
        return _nullable(_NUMBER)
    return {"type": {bool: "boolean", int: "integer", str: "string"}[kind]}


def _step_entry() -> Schema:
    """A /api/log record: StepRecord's fields, rejected gates as a list, seq and wall time."""
    hints = typing.get_type_hints(StepRecord)
    properties = {field.name: _schema_of(hints[field.name])
                  for field in dataclasses.fields(StepRecord)}
    properties["state"] = {"enum": [state.value for state in LoopState]}
    properties["rejected"] = {"type": "array", "items": {"type": "string"},
                              "description": "the gates that refused the reading; [] trusted"}
    properties["seq"] = {"type": "integer", "minimum": 1}
    properties["time"] = {"type": "number", "description": "Unix time"}
    return {"type": "object", "required": sorted(properties), "properties": properties,
            "additionalProperties": False}


def _closed(properties: dict[str, Schema]) -> Schema:
    return {"type": "object", "required": list(properties), "properties": properties,
            "additionalProperties": False}


_NUMBER = {"type": "number"}
_COUNT = {"type": "integer", "minimum": 0}
_BIAS = {"type": "number", "description": "what the model reads at the sharpest plane focus now "
                                        "found (µm); the lock holds that reading, 0 until "
                                        "measured (docs/loop.md)"}
_PAIR = {"type": "array", "items": _NUMBER, "minItems": 2, "maxItems": 2}
_STATE = {"enum": [state.value for state in LoopState]}
_COUNTS_BY = {"type": "object", "additionalProperties": _COUNT}

_SCHEMAS: dict[str, Schema] = {
    "Error": _closed({"error": {"type": "string", "description": "what is wrong"}}),
    "Health": _closed({"healthy": {"type": "boolean"}, "reason": {"type": "string"},
                       "state": _STATE}),
    "StepEntry": _step_entry(),
    "LogPage": _closed({"records": {"type": "array", "items": _ref("schemas", "StepEntry")},
                        "last_seq": _COUNT, "missed": _COUNT, "more": {"type": "boolean"}}),
    "FocusReport": _closed({"success": {"type": "boolean"}, "moves": _COUNT, "steps": _COUNT,
                            "z_um": _nullable(_NUMBER), "error_um": _nullable(_NUMBER),
                            "state": _STATE, "reason": {"type": "string"},
                            "model_bias_um": _BIAS}),
    "Counters": _closed({"steps": _COUNT, "moves": _COUNT, "locked_steps": _COUNT,
                         "rejected": _COUNTS_BY, "decided": _COUNTS_BY, "faults": _COUNT,
                         "lock_starts": _COUNT, "focus_runs": _COUNT, "link_retries": _COUNT}),
    "Status": _closed({
        "state": _STATE, "reason": {"type": "string"}, "z_um": _nullable(_NUMBER),
        "offset_um": _NUMBER, "model_bias_um": _BIAS, "offset_limit_um": _NUMBER,
        "tolerance_um": _NUMBER, "rate_hz": _NUMBER,
        "travel_um": {"type": ["array", "null"], "prefixItems": [_NUMBER, _NUMBER],
                      "items": False, "minItems": 2},
        "leds": {"type": "string", "description": "a pattern's name, off or unknown"},
        "model": {"type": "object", "additionalProperties": False,
                  "properties": {"id": {"type": "string"}, "path": {"type": "string"}},
                  "description": "{} until the hardware is open"},
        "hardware": _closed({"camera": {"enum": list(typing.get_args(CameraBackend))},
                             "board": {"enum": list(typing.get_args(BoardBackend))}}),
        "mode": {"enum": [mode.value for mode in ServiceMode]},
        "counters": _ref("schemas", "Counters"),
        "last_step": {"oneOf": [_ref("schemas", "StepEntry"), {"type": "null"}]},
        "uptime_s": _NUMBER, "healthy": {"type": "boolean"}, "health": {"type": "string"}}),
    "Histogram": _closed({
        "full_scale": _COUNT, "bin_width": _NUMBER,
        "counts": {"type": "array", "items": _COUNT, "description": "pixels per bin, from 0"},
        "saturation_level": {**_NUMBER, "description": "a pixel at or above this is saturated"},
        "saturated_fraction": _NUMBER,
        "saturated_limit": {**_NUMBER, "description": "gates.saturated_fraction"},
        "saturated": {"type": "boolean"}, "mean_fraction": _NUMBER,
        "dark_limit": {**_NUMBER, "description": "gates.dark_fraction"},
        "dark": {"type": "boolean"}}),
    "Alignment": _closed({
        "expected_na": {**_PAIR, "description": "the bundle's LED NA vector (x, y)"},
        "measured_na": {**_PAIR, "description": "the fitted one"},
        "offset_na": {**_PAIR, "description": "measured minus expected"},
        "offset_na_norm": _NUMBER,
        "move_mm": {**_PAIR, "description": "move the LED by this in its plane (x toward the "
                                            "image's right edge, y toward its bottom edge)"},
        "led_distance_mm": {**_NUMBER, "description": "optics.led_distance_mm or the preset's"},
        "aligned": {"type": "boolean"},
        "aligned_within_na": _NUMBER,
        "accuracy_na": {**_NUMBER, "description": "the check's measured accuracy"},
        "advice": {"type": "string", "description": "what to do, in one sentence"},
        "radius_na": {**_NUMBER, "description": "the circles' fitted radius"},
        "explained": {**_NUMBER, "description": "fraction of the spectrum the circles explain"},
        "contrast": {**_NUMBER, "description": "log power step into the circles"},
        "frames": _COUNT}),
    "NoCalibration": _closed({"phase": {"const": "none"}, "message": {"type": "string"}}),
    "LatestCalibration": {"oneOf": [_ref("schemas", "Calibration"),
                                    _ref("schemas", "NoCalibration")]},
    "Calibration": _closed({
        "phase": {"enum": [phase.value for phase in cal.Phase]},
        "message": {"type": "string", "description": "where it is, in a sentence"},
        "folder": {"type": "string", "description": "its files, as focuslock calibrate's"},
        "base": {"type": "string", "description": "the bundle it fine-tunes"},
        "stacks": _COUNT, "range_um": _NUMBER, "step_um": _NUMBER, "planes": _COUNT,
        "stack": {**_COUNT, "description": "the stack collected now, from 1"},
        "plane": {**_COUNT, "description": "its planes taken"},
        "planes_done": _COUNT, "planes_total": _COUNT,
        "time_left_s": {**_nullable(_NUMBER),
                        "description": "collecting's, from the planes taken so far"},
        "curves": {"type": "array", "items": _ref("schemas", "GroundTruthCurve")},
        "result": {"oneOf": [_ref("schemas", "CalibrationResult"), {"type": "null"}]},
        "installed": {"type": ["string", "null"],
                      "description": "the installed bundle's folder"}}),
    "GroundTruthCurve": _closed({
        "file": {"type": "string"}, "z_um": {"type": "array", "items": _NUMBER},
        "sharpness": {"type": "array", "items": _NUMBER},
        "focus_z_um": {**_nullable(_NUMBER), "description": "null: no peak (error says why)"},
        "error": {"type": "string"}}),
    "CalibrationResult": _closed({
        "before_rmse_um": _nullable(_NUMBER), "after_rmse_um": _nullable(_NUMBER),
        "before_refused": {**_nullable(_NUMBER),
                           "description": "share of the held-out frames the base's gates "
                                          "refuse (null: none read)"},
        "after_refused": {**_nullable(_NUMBER),
                          "description": "the same for the fine-tuned bundle"},
        "no_move_rmse_um": {**_nullable(_NUMBER),
                            "description": "the held-out frames' RMS distance from focus: what "
                                           "not moving at all would leave"},
        "improved": {"type": "boolean",
                     "description": "better than both the base and not moving"},
        "verdict": {"type": "string", "description": "the comparison, in words"},
        "held_out": {"type": "array", "items": {"type": "string"}},
        "bundle": {"type": "string", "description": "the fine-tuned bundle's folder"},
        "seconds": {**_NUMBER, "description": "how long fine-tuning and comparing took"}}),
}
