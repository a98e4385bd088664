# TEMPORARY experiment: the previous bench app (no settle) with the diagnostics wrapper.
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
from django.core.asgi import get_asgi_application
django_app = get_asgi_application()
from apps.features import fastpath
old = fastpath.wrap(django_app)
import apps.core.heap as heap
heap.settle = lambda **k: 0  # portal.asgi would freeze; the old bench app did not
import bench.features_asgi as fa
fa.application = old
app = fa._timed
