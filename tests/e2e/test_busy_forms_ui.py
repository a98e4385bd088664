"""A slow form submit shows a busy button and cannot be sent twice (static/portal/portal.js)."""

import re

import pytest

from apps.accounts import roles
from apps.training.models import TrainingJob
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
BUTTON = "form[data-busy] button[type=submit]"


@pytest.mark.timeout(120)
def test_launch_button_is_busy_while_the_server_works(portal_server, page, login):
    """The launch form has a field named "dataset", which shadows form.dataset in the DOM."""
    make_user("lena", roles.ML_ENGINEERS)
    login("lena")
    page.goto(f"{portal_server}/training/templates/digits-cnn/launch/")
    # A GPU job with no GPU worker online waits in its queue: no worker trains it during this test.
    page.select_option("#id_resource_class", "gpu")
    # Hold the first submit in the page (as a slow server would) to look at the button meanwhile.
    page.evaluate("document.addEventListener('submit', (e) => e.preventDefault(), {once: true})")
    page.click(BUTTON)
    assert page.locator(BUTTON).is_disabled() and "Launching…" in page.locator(BUTTON).inner_text()
    page.click(BUTTON, force=True, no_wait_after=True, timeout=2000)  # a second click sends nothing
    assert TrainingJob.objects.count() == 0
    with page.expect_navigation(url=re.compile(r".*/training/jobs/\d+/")):
        page.evaluate("document.querySelector('form[data-busy]').submit()")
    assert TrainingJob.objects.filter(owner__username="lena").count() == 1  # sent once
    assert page.locator("text=waits in the queue").count() >= 1
