"""Find optional per-app modules (urls, api.urls, routing, seed, dashboard) by convention.

Each domain app plugs itself into the portal by providing these modules; nothing central has to
be edited when an app grows a page or a socket.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator
from types import ModuleType

from django.apps import apps


def portal_app_modules(submodule: str) -> Iterator[tuple[str, ModuleType]]:
    for config in apps.get_app_configs():
        if not config.name.startswith("apps."):
            continue
        name = f"{config.name}.{submodule}"
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            yield config.label, importlib.import_module(name)
