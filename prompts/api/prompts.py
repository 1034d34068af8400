"""Prompt API: accept chat prompts (202), list and show one's own requests."""

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response

from common.fields import StrictCharField
from common.serializers import SharedFieldsSerializer
from common.urls import url_reverse
from prompts.models import PromptRequest, PromptResponse
from prompts.selectors import prompt_request_list
from prompts.services import PromptConflict, prompt_request_cancel, prompt_request_create, prompt_request_retry


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request is not in a status that allows this."
    default_code = "conflict"


class PromptCreateSerializer(SharedFieldsSerializer):
    """A chat prompt to accept: its text, and optionally a model and a conversation to continue."""

    prompt_text = StrictCharField(help_text="What to ask the model.")
    model = StrictCharField(required=False, help_text="A model your tier allows; the default model if omitted.")
    conversation = serializers.IntegerField(
        required=False, min_value=1, source="conversation_id", help_text="Continue this conversation of yours."
    )


class PromptResponseSerializer(serializers.ModelSerializer):
    total_tokens = serializers.IntegerField(read_only=True)

    class Meta:
        model = PromptResponse
        fields = [
            "text",
            "result",
            "provider",
            "model",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "duration_ms",
            "created_at",
        ]


class PromptRequestSerializer(serializers.ModelSerializer):
    response = serializers.SerializerMethodField()
    status_url = serializers.SerializerMethodField()
    task_url = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()

    class Meta:
        model = PromptRequest
        fields = [
            "id",
            "kind",
            "status",
            "model",
            "prompt_text",
            "input",
            "conversation",
            "error",
            "task_id",
            "status_url",
            "task_url",
            "progress",
            "created_at",
            "started_at",
            "completed_at",
            "response",
        ]
        read_only_fields = fields

    @extend_schema(responses=PromptResponseSerializer(allow_null=True))
    def get_response(self, obj: PromptRequest) -> dict | None:
        response = getattr(obj, "response", None)
        if response is None:
            return None
        data = PromptResponseSerializer(response).data
        data["image_url"] = self._absolute(url_reverse("api:image-file", obj.pk)) if response.file else None
        return data

    @extend_schema(
        responses=inline_serializer(
            "Progress", {"percent": serializers.IntegerField(allow_null=True), "message": serializers.CharField()}
        )
    )
    def get_progress(self, obj: PromptRequest) -> dict:
        """The current task's progress (annotated by the selector, no query per row)."""
        return {"percent": getattr(obj, "progress_percent", None), "message": getattr(obj, "progress_message", "")}

    def get_status_url(self, obj: PromptRequest) -> str:
        return self._absolute(url_reverse("api:prompt-detail", obj.pk))

    def get_task_url(self, obj: PromptRequest) -> str | None:
        return self._absolute(url_reverse("api:task-detail", obj.task_id)) if obj.task_id else None

    def _absolute(self, path: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class PromptAcceptedSerializer(PromptRequestSerializer):
    class Meta(PromptRequestSerializer.Meta):
        fields = ["id", "status", "task_id", "status_url", "task_url", "model", "created_at"]
        read_only_fields = fields


_DATETIME = serializers.DateTimeField()


def prompt_accepted_response(request: Request, prompt: PromptRequest) -> Response:
    """The 202 for an accepted request: PromptAcceptedSerializer's body, built directly.

    Every accepted POST answers this; a ModelSerializer builds its fields from the model on
    each use (about 0.7 ms of a request's CPU). prompts/tests/test_prompt_api.py keeps the two equal.
    """
    status_url = request.build_absolute_uri(url_reverse("api:prompt-detail", prompt.pk))
    task_url = request.build_absolute_uri(url_reverse("api:task-detail", prompt.task_id)) if prompt.task_id else None
    body = {
        "id": prompt.pk,
        "status": str(prompt.status),
        "task_id": str(prompt.task_id) if prompt.task_id else None,
        "status_url": status_url,
        "task_url": task_url,
        "model": prompt.model,
        "created_at": _DATETIME.to_representation(prompt.created_at),
    }
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": status_url})


class PromptViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your chat prompts. POST answers 202 at once; follow `status_url` or `task_url`."""

    serializer_class = PromptRequestSerializer
    filterset_fields = ["status", "kind"]

    def get_queryset(self) -> QuerySet[PromptRequest]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return PromptRequest.objects.none()
        return prompt_request_list(user=self.request.user)

    @extend_schema(request=PromptCreateSerializer, responses={202: PromptAcceptedSerializer})
    def create(self, request: Request) -> Response:
        incoming = PromptCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        prompt = prompt_request_create(user=request.user, **incoming.validated_data)
        return prompt_accepted_response(request, prompt)

    @extend_schema(request=None, responses={200: PromptRequestSerializer, 409: dict})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """Cancel a pending or running request (409 if it already finished)."""
        prompt = self.get_object()
        try:
            prompt = prompt_request_cancel(request_id=prompt.pk, by=request.user)
        except PromptConflict as exc:
            raise Conflict(str(exc)) from None
        return Response(self.get_serializer(prompt).data)

    @extend_schema(request=None, responses={202: PromptAcceptedSerializer, 409: dict, 429: dict})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        """Send a failed or cancelled request again as a new task (counts against today's limit)."""
        prompt = self.get_object()
        try:
            prompt = prompt_request_retry(request_id=prompt.pk, by=request.user)
        except PromptConflict as exc:
            raise Conflict(str(exc)) from None
        return prompt_accepted_response(request, prompt)
