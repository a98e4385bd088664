"""Live pages format numbers and times in the browser exactly as the server's filters do
(static/portal/portal.js `portal.num` / `portal.when` against apps/core/format.py)."""

import datetime as dt

import pytest

from apps.accounts import roles
from apps.core import format as fmt
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
VALUES = [8.0, 12000, 0.912345, 3.806e-05, 1234.5678, 12.3456, -0.5, 2.5e15, 0, 7]


@pytest.mark.timeout(120)
def test_browser_formats_like_the_server(portal_server, page, login):
    make_user("fiona", roles.VIEWERS)
    login("fiona")
    page.goto(f"{portal_server}/")
    in_browser = page.evaluate("(values) => values.map((v) => window.portal.num(v))", VALUES)
    assert in_browser == [fmt.num(v) for v in VALUES]
    moment = dt.datetime(2026, 11, 30, 14, 5, tzinfo=dt.UTC)
    assert page.evaluate("(iso) => window.portal.when(iso)", moment.isoformat()) == fmt.when(moment)
