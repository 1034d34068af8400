"""ASGI entry point (uvicorn serves it in `make run` and in the Dockerfile)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["DJANGO_ASGI"] = "1"  # settings turn the database connection pool on (DB_POOL) for the web
application = get_asgi_application()
