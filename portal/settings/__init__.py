"""Portal settings, driven by environment variables (see README.md, "Configuration"); the only place
the environment is read (through portal.env's helpers).

Embedded mode (the default): SQLite in WAL mode and a portal-managed redis-server under var/.
Services mode: DATABASE_URL (PostgreSQL) and REDIS_URL point at real services.

Four parts, each building on the ones before it (a later part may read or extend an earlier one's
settings, e.g. CELERY_BEAT_SCHEDULE): base (environment, Django, database, Redis, Celery, sign-in,
REST API, audit), storage (static files, vault, S3, catalog, feature store, training, metrics,
e-mail), domains (approvals, serving, monitoring), security (issue 17's controls).
"""

from portal.settings.security import *
