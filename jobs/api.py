"""Task status and health endpoints."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.models import TaskRecord
from jobs.selectors import health_check, task_record_get


class TaskRecordSerializer(serializers.ModelSerializer):
    task_id = serializers.UUIDField(source="id")
    progress = serializers.SerializerMethodField()
    created = serializers.DateTimeField(source="created_at")
    started = serializers.DateTimeField(source="started_at")
    finished = serializers.DateTimeField(source="finished_at")

    class Meta:
        model = TaskRecord
        fields = ["task_id", "name", "state", "queue", "progress", "result", "error", "created", "started", "finished"]
        read_only_fields = fields

    def get_progress(self, obj: TaskRecord) -> dict:
        return {"percent": obj.progress_percent, "message": obj.progress_message}


class TaskDetailView(APIView):
    """A task's state, progress, result or error; its owner or staff only."""

    @extend_schema(responses=TaskRecordSerializer)
    def get(self, request: Request, task_id: str) -> Response:
        record = task_record_get(user=request.user, task_id=task_id)
        if record is None:
            raise NotFound("No such task.")
        return Response(TaskRecordSerializer(record).data)


class HealthView(APIView):
    """Database, broker and workers; 503 when the database or broker is unreachable."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(responses={200: dict, 503: dict})
    def get(self, request: Request) -> Response:
        report = health_check()
        healthy = report["database"]["ok"] and report["broker"]["ok"]
        return Response({"ok": healthy, **report}, status=200 if healthy else 503)
