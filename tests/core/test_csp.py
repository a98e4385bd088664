"""The Content Security Policy (issue 17): the header on pages and API answers, and templates that
need no exception from it (no inline script, <style>, style= or on*= attribute anywhere)."""

from __future__ import annotations

import re
from pathlib import Path

import plotly
import pytest
from django.conf import settings
from django.test import Client

from scripts.plotly_css import BUNDLE, MAPLIBRE_TARGET, TARGET, maplibre_css, plotly_css
from tests.conftest import api_client_for

ROOT = Path(settings.BASE_DIR)
# Every policy the portal sends, in every mode: directive -> its sources.
POLICY = {
    "default-src": {"'self'"},
    "script-src": {"'self'"},
    "style-src": {"'self'"},
    # only the empty style="" (plotly.js clears colour-bar rects with it): base64(sha256(b""))
    "style-src-attr": {"'unsafe-hashes'", "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"},
    "img-src": {"'self'", "data:"},
    "frame-ancestors": {"'none'"},
    "object-src": {"'none'"},
    "base-uri": {"'self'"},
    "form-action": {"'self'"},
}
DJANGO_COMMENT = re.compile(r"{#.*?#}|{%\s*comment\s*%}.*?{%\s*endcomment\s*%}", re.S)
TAG = re.compile(r"<([a-zA-Z][\w-]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>")
SCRIPT_TYPE = re.compile(r"""(?<![\w-])type\s*=\s*["']application/(?:ld\+)?json["']""")
SRC = re.compile(r"(?<![\w-])src\s*=")
STYLE_ATTR = re.compile(r"(?<![\w-])style\s*=")
HANDLER_ATTR = re.compile(r"(?<![\w-])on[a-z]+\s*=")


def parse_policy(header: str) -> dict[str, set[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: set(sources) for name, *sources in directives}


def inline_code(text: str) -> list[str]:
    """What in this HTML (or HTML template) a strict policy would refuse to run or apply."""
    found = []
    for match in TAG.finditer(DJANGO_COMMENT.sub("", text)):
        name, attributes = match.group(1).lower(), match.group(2)
        if name == "script" and not SRC.search(attributes) and not SCRIPT_TYPE.search(attributes):
            found.append(f"inline <script{attributes}>")
        if name == "style":
            found.append("<style> element")
        if STYLE_ATTR.search(attributes):
            found.append(f"style= attribute on <{name}>")
        if handler := HANDLER_ATTR.search(attributes):
            found.append(f"{handler.group(0)} handler on <{name}>")
    return found


def template_files() -> list[Path]:
    return sorted([*ROOT.glob("templates/**/*.html"), *ROOT.glob("apps/*/templates/**/*.html")])


def test_inline_code_finder_catches_each_kind():
    assert inline_code('<script>alert(1)</script><script src="/static/x.js"></script>') == ["inline <script>"]
    assert inline_code('<script type="application/json" id="d">{}</script>') == []
    assert inline_code("<style>p{}</style>") == ["<style> element"]
    assert inline_code('<div class="a" style="width: 5%">') == ["style= attribute on <div>"]
    assert inline_code("<form onsubmit=\"return confirm('x > y')\">") == ["onsubmit= handler on <form>"]
    assert inline_code('<div data-style="x" data-onclick="y" data-confirm="Delete?">') == []
    assert inline_code("{# <style> in a comment never reaches the browser #}") == []


def test_no_template_holds_inline_script_style_or_handler():
    files = template_files()
    assert len(files) > 50  # the walk found the templates
    offenders = {
        str(path.relative_to(ROOT)): found for path in files if (found := inline_code(path.read_text(encoding="utf-8")))
    }
    assert not offenders, f"move these to static/js or static/css (data- attributes, classes): {offenders}"


def test_no_python_builds_html_with_inline_style_or_script():
    sources = [*ROOT.glob("apps/*/templatetags/*.py"), *ROOT.glob("apps/core/pages.py")]
    offenders = [
        str(path.relative_to(ROOT))
        for path in sources
        if re.search(r"<script(?![^>]*src)|<style|(?<![\w-])style=|(?<![\w-])on[a-z]+=[\"']", path.read_text())
    ]
    assert not offenders


@pytest.mark.django_db
def test_page_carries_the_policy(owner):
    client = Client()
    client.force_login(owner)
    response = client.get("/")
    assert response.status_code == 200
    policy = parse_policy(response["Content-Security-Policy"])
    for directive, sources in POLICY.items():
        assert policy[directive] == sources, directive
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]
    assert "'self'" in policy["connect-src"]  # the live pages' sockets (CSP 3 matches ws: to 'self')
    assert inline_code(response.content.decode()) == []


@pytest.mark.django_db
def test_api_answer_and_sign_in_page_carry_the_policy(owner):
    response = api_client_for(owner, scopes=("read",)).get("/api/v1/me")
    assert response.status_code == 200
    assert parse_policy(response["Content-Security-Policy"])["script-src"] == {"'self'"}
    sign_in = Client().get("/accounts/login/")
    assert parse_policy(sign_in["Content-Security-Policy"])["form-action"] == {"'self'"}
    assert response["X-Frame-Options"] == "DENY"


@pytest.mark.django_db
def test_swagger_ui_loads_its_init_script_from_a_file(owner):
    client = Client()
    client.force_login(owner)
    page = client.get("/api/v1/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert inline_code(html) == [] and 'src="/api/v1/docs/?script=' in html
    script = client.get("/api/v1/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content


@pytest.mark.django_db
def test_redoc_alone_allows_inline_styles_and_never_inline_scripts(owner):
    client = Client()
    client.force_login(owner)
    page = client.get("/api/v1/redoc/")
    assert page.status_code == 200
    policy = parse_policy(page["Content-Security-Policy"])
    assert policy["style-src"] == {"'self'", "'unsafe-inline'"} and policy["script-src"] == {"'self'"}
    assert inline_code(page.content.decode()) == []
    assert b"fonts.googleapis.com" not in page.content  # air-gapped: no outside fonts
    assert parse_policy(client.get("/")["Content-Security-Policy"])["style-src"] == {"'self'"}


def test_plotly_css_files_match_the_bundle():
    """Chart pages load plotly.js's strict build and link its two stylesheets as files, on the elements that tell plotly.js not
    to inject them as <style> (templates/includes/plotly.html); after an upgrade run scripts/plotly_css.py."""
    bundle = BUNDLE.read_text(encoding="utf-8")
    assert 'matches(".no-inline-styles")' in bundle, "plotly.js dropped its strict-CSP opt-out"
    assert "new Function(" not in bundle.replace('new Function("return this")', "")  # the strict build
    python_side = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text(encoding="utf-8")
    version = re.compile(r"plotly\.js (?:\(strict - minified\) )?v([\d.]+)")
    assert version.search(bundle).group(1) == version.search(python_side).group(1), "update static/vendor/plotly"
    assert TARGET.read_text() == plotly_css(bundle), "static/css/plotly.css is stale: run scripts/plotly_css.py"
    element_id, css = maplibre_css(bundle)
    assert MAPLIBRE_TARGET.read_text() == css, "static/css/plotly-maplibre.css is stale: run scripts/plotly_css.py"
    include = (ROOT / "templates" / "includes" / "plotly.html").read_text()
    assert re.search(
        r'<link [^>]*href="[^"]*css/plotly\.css[^"]*" id="plotly\.js-style-global" class="no-inline-styles"', include
    )
    assert re.search(rf'<link [^>]*href="[^"]*css/plotly-maplibre\.css[^"]*" id="{element_id}"', include)


def test_every_chart_page_loads_plotly_through_the_include():
    direct = [
        str(path.relative_to(ROOT))
        for path in template_files()
        if "plotly.min.js" in path.read_text() and not path.match("includes/plotly.html")
    ]
    assert direct == [], "load plotly with {% include 'includes/plotly.html' %} so its CSS comes as files"
