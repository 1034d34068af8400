"""The floor for bench_accept: a bare Django view that does one INSERT and one Redis LPUSH.

Mounted under /bench/ by config/urls.py only when BENCH_BASELINE_VIEWS=1 (bench_accept sets it
for the server it starts), so it never exists in a deployment. Same server process, same
middleware as the API; no DRF, no authentication, no service, no task record.
"""

import json

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from redis import Redis

TABLE = "bench_accept_baseline"
LIST_KEY = "bench:accept:baseline"
_redis: Redis | None = None


@csrf_exempt
def accept(request: HttpRequest) -> JsonResponse:
    global _redis
    if _redis is None:
        _redis = Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5)
    body = json.loads(request.body or b"{}")
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} (body, created_at) VALUES (%s, now()) RETURNING id", [json.dumps(body)])
        row_id = cursor.fetchone()[0]
    _redis.lpush(LIST_KEY, json.dumps({"id": row_id}))
    return JsonResponse({"id": row_id, "status": "PENDING"}, status=202)


urlpatterns = [path("accept/", accept, name="bench-accept")]
