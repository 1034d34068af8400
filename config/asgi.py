"""ASGI entry point (uvicorn serves it in `make run` and in the Dockerfile)."""

import os

import django

from common.asgi import OneHopASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["DJANGO_ASGI"] = "1"  # settings turn the database connection pool on (DB_POOL) for the web
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application() does
application = OneHopASGIHandler()
