"""Static file storages whose URLs are worked out once per process.

Every page asks for about seven static URLs (`{% static %}`); Django's storages join and quote
each one again, about 25 µs apiece. Names and their hashed forms do not change while a process
runs (collectstatic happens before it starts), so each answer is kept."""

from __future__ import annotations

from django.contrib.staticfiles.storage import StaticFilesStorage
from whitenoise.storage import CompressedManifestStaticFilesStorage


class _KnownUrls:
    def url(self, name, force=False):
        if force:
            return super().url(name, force)
        urls = self.__dict__.setdefault("_known_urls", {})
        found = urls.get(name)
        if found is None:
            found = urls[name] = super().url(name)
        return found


class PortalStaticFilesStorage(_KnownUrls, StaticFilesStorage):
    """Development and tests: Django's storage, URLs kept."""


class PortalManifestStorage(_KnownUrls, CompressedManifestStaticFilesStorage):
    """Production: WhiteNoise's compressed, hashed files, URLs kept."""
