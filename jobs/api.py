"""Task status and health endpoints."""

from datetime import UTC, datetime

import django_filters
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.urls import url_reverse
from jobs.fairshare import waiting_position
from jobs.models import TaskRecord
from jobs.schedules import REGISTRY
from jobs.selectors import health_check, task_record_get, task_record_list, workers_active, workers_overview
from jobs.services import periodic_job_trigger, task_revoke


class TaskRecordSerializer(serializers.ModelSerializer):
    task_id = serializers.UUIDField(source="id")
    progress = serializers.SerializerMethodField()
    position = serializers.SerializerMethodField()
    created = serializers.DateTimeField(source="created_at")
    started = serializers.DateTimeField(source="started_at", allow_null=True)
    finished = serializers.DateTimeField(source="finished_at", allow_null=True)

    class Meta:
        model = TaskRecord
        fields = [
            "task_id",
            "name",
            "state",
            "position",
            "queue",
            "progress",
            "result",
            "error",
            "created",
            "started",
            "finished",
        ]
        read_only_fields = fields

    def get_position(self, obj: TaskRecord) -> int | None:
        """While WAITING: 1 for the owner's next task to be released in its queue."""
        return waiting_position(obj)

    def get_progress(self, obj: TaskRecord) -> dict:
        return {"percent": obj.progress_percent, "message": obj.progress_message}


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 time, compared in UTC: PostgreSQL refuses offsets beyond 15:59 that Python reads."""

    def filter(self, qs: QuerySet, value: datetime | None) -> QuerySet:
        if value is not None:
            try:
                value = value.astimezone(UTC)
            except OverflowError:  # e.g. 0001-01-01T00:00+17:00 is before year 1 in UTC
                raise ValidationError({self.field_name: "This time is out of range."}) from None
        return super().filter(qs, value)


class TaskRecordFilter(django_filters.FilterSet):
    state = django_filters.MultipleChoiceFilter(choices=TaskRecord.State.choices)
    name = django_filters.CharFilter()
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = TaskRecord
        fields = ["state", "name", "queue"]


class TaskListView(generics.ListAPIView):
    """Your tasks, newest first (staff: everyone's); filter by state, name, queue and date."""

    serializer_class = TaskRecordSerializer
    filterset_class = TaskRecordFilter

    def get_queryset(self) -> QuerySet[TaskRecord]:
        if getattr(self, "swagger_fake_view", False):
            return TaskRecord.objects.none()
        return task_record_list(user=self.request.user)


class RevokeSerializer(serializers.Serializer):
    terminate = serializers.BooleanField(default=False, help_text="Staff only: also kill it if running.")


class TaskRevokeView(APIView):
    """Stop a task that has not finished; its request becomes CANCELLED. Owner or staff."""

    @extend_schema(request=RevokeSerializer, responses={200: TaskRecordSerializer, 409: dict})
    def post(self, request: Request, task_id: str) -> Response:
        record = task_record_get(user=request.user, task_id=task_id)
        if record is None:
            raise NotFound("No such task.")
        options = RevokeSerializer(data=request.data)
        options.is_valid(raise_exception=True)
        terminate = options.validated_data["terminate"]
        if terminate and not request.user.is_staff:
            raise PermissionDenied("Only staff may terminate a running task.")
        if record.is_final or not task_revoke(record=record, by=request.user, terminate=terminate):
            record.refresh_from_db()
            return Response({"detail": f"The task already ended: {record.state}."}, status=status.HTTP_409_CONFLICT)
        record.refresh_from_db()
        return Response(TaskRecordSerializer(record).data)


class ActiveTasksView(APIView):
    """Staff: what the workers run, hold and have scheduled now (answers within seconds)."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses=dict)
    def get(self, request: Request) -> Response:
        return Response(workers_active())


class WorkersView(APIView):
    """Staff: the workers online, their pools, load and the queues they consume."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses=dict)
    def get(self, request: Request) -> Response:
        return Response(workers_overview())


class TriggerView(APIView):
    """Staff: run a periodic job now (202 with its task id); unknown job 404."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        request=None,
        responses={
            202: inline_serializer(
                "Triggered",
                {
                    "job": serializers.CharField(),
                    "task_id": serializers.UUIDField(),
                    "status_url": serializers.URLField(),
                },
            )
        },
    )
    def post(self, request: Request, job: str) -> Response:
        if job not in REGISTRY:
            raise NotFound(f"No periodic job {job!r}; known jobs: {', '.join(sorted(REGISTRY))}.")
        record = periodic_job_trigger(slug=job, by=request.user)
        status_url = request.build_absolute_uri(url_reverse("api:task-detail", record.id))
        return Response({"job": job, "task_id": record.id, "status_url": status_url}, status=status.HTTP_202_ACCEPTED)


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
    throttle_classes: list = []  # load balancers probe it often

    @extend_schema(responses={200: dict, 503: dict})
    def get(self, request: Request) -> Response:
        report = health_check()
        healthy = report["database"]["ok"] and report["broker"]["ok"]
        return Response({"ok": healthy, **report}, status=200 if healthy else 503)
