"""LOG_FORMAT=json: one JSON object per line with time, level, logger, message and process, the
request's id, path and user when a line is written while it is answered, and tracebacks as text."""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime

import pytest
from django.test import RequestFactory

from apps.core import logjson


@pytest.fixture
def lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logjson.JsonFormatter())
    logger = logging.getLogger("portal.test.logjson")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

    def read():
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield logger, read
    logger.removeHandler(handler)


def test_a_plain_line_carries_the_basic_fields(lines):
    logger, read = lines
    logger.info("hello %s", "wörld")
    (entry,) = read()
    assert entry["message"] == "hello wörld"
    assert entry["level"] == "INFO" and entry["logger"] == "portal.test.logjson"
    assert isinstance(entry["process"], int)
    assert entry["time"].endswith("Z")
    datetime.fromisoformat(entry["time"])
    assert "request_id" not in entry and "exc_info" not in entry


def test_tracebacks_are_text_in_one_line(lines):
    logger, read = lines
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        logger.exception("failed")
    (entry,) = read()
    assert entry["level"] == "ERROR"
    assert "Traceback" in entry["exc_info"] and "ValueError: boom" in entry["exc_info"]


@pytest.mark.django_db
def test_lines_written_during_a_request_carry_its_id_path_and_user(lines, owner):
    logger, read = lines
    request = RequestFactory().get("/models/x/", HTTP_X_REQUEST_ID="abc-123")
    request.user = owner
    bound = logjson.bind(request)
    try:
        logger.warning("inside")
    finally:
        logjson.unbind(bound)
    logger.warning("outside")
    inside, outside = read()
    assert inside["request_id"] == "abc-123" and inside["path"] == "/models/x/" and inside["user"] == owner.pk
    assert "request_id" not in outside


def test_a_made_request_id_is_stable_and_a_bad_one_is_replaced(lines):
    logger, read = lines
    request = RequestFactory().get("/x", HTTP_X_REQUEST_ID='bad id "with" quotes')
    logger.info("one", extra={"request": request})
    logger.info("two", extra={"request": request})
    first, second = read()
    assert first["request_id"] == second["request_id"] != 'bad id "with" quotes'
    assert len(first["request_id"]) == 16


def test_an_unresolved_lazy_user_is_not_loaded(lines):
    from django.utils.functional import SimpleLazyObject

    logger, read = lines
    request = RequestFactory().get("/x")

    def explode():
        raise AssertionError("a log line must not load the user")

    request.user = SimpleLazyObject(explode)
    logger.info("lazy", extra={"request": request})
    (entry,) = read()
    assert "user" not in entry and entry["path"] == "/x"


def test_a_request_whose_fields_fail_still_logs_and_says_why(lines):
    class Broken:
        META: dict = {}

        @property
        def path(self):
            raise RuntimeError("no path")

    logger, read = lines
    logger.info("still written", extra={"request": Broken()})
    (entry,) = read()
    assert entry["message"] == "still written"
    assert entry["context_error"] == "RuntimeError" and "path" not in entry


def test_settings_switch_the_console_formatter():
    from django.conf import settings

    handler = settings.LOGGING["handlers"]["console"]
    assert handler["formatter"] == ("json" if settings.LOG_FORMAT == "json" else "plain")
    assert settings.LOGGING["formatters"]["json"]["()"] == "apps.core.logjson.JsonFormatter"


@pytest.mark.django_db
def test_the_middleware_binds_each_request(client):
    """A line written while Django answers (here its own 404 warning) carries the request's fields."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logjson.JsonFormatter())
    django_request = logging.getLogger("django.request")
    django_request.addHandler(handler)
    try:
        client.get("/api/v1/no-such-thing", HTTP_X_REQUEST_ID="req-42")
    finally:
        django_request.removeHandler(handler)
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert entry["logger"] == "django.request" and entry["level"] == "WARNING"
    assert entry["request_id"] == "req-42" and entry["path"] == "/api/v1/no-such-thing"
