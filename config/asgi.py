"""ASGI entry point (uvicorn serves it in `make run` and in the Dockerfile)."""

import gc
import os

import django
from django.urls import get_resolver

from common.asgi import OneHopASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["DJANGO_ASGI"] = "1"  # settings turn the database connection pool on (DB_POOL) for the web
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application() does
application = OneHopASGIHandler()
# Everything loaded so far (Django, the apps, and their URLs, views and serializers, loaded here
# rather than by the first request) lives as long as the process: kept out of the garbage
# collector's full passes, which otherwise walk it all again and again (the API's slowest 1 % of
# requests under load took 150 ms with them, 75 ms without).
get_resolver().check()  # imports the URLconf, its views and serializers (and checks it)
gc.collect()
gc.freeze()
