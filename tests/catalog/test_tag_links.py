"""Tag badges link to the list filtered by exactly that tag, whatever characters it holds."""

from urllib.parse import parse_qs, urlsplit

from apps.catalog.templatetags.catalog_rows import tag_links


def test_tags_with_url_syntax_link_to_their_own_filter():
    html = str(tag_links(["a&b", "#x", "plain", "<i>"]))
    hrefs = [part.split('"', 1)[0] for part in html.split('href="')[1:]]
    assert [parse_qs(urlsplit(h.replace("&amp;", "&")).query)["tag"][0] for h in hrefs] == ["a&b", "#x", "plain", "<i>"]
    assert "<i>" not in html.replace("&lt;i&gt;", "")
