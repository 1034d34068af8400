"""What the document API reads and answers."""

from typing import Any

from django.conf import settings
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.request import Request

from common.fields import StrictCharField
from common.urls import url_reverse
from sync.models import Document


class DocumentTextSerializer(serializers.Serializer):
    title = StrictCharField(max_length=255, help_text="A name for the document.")
    text = StrictCharField(trim_whitespace=False, help_text="The document's text.")


class DocumentFileSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True, help_text="Plain text, Markdown, HTML or PDF.")
    title = StrictCharField(max_length=255, required=False, help_text="Defaults to the file's name.")


class DocumentBatchSerializer(serializers.Serializer):
    documents = DocumentTextSerializer(many=True, allow_empty=False, max_length=settings.DOCUMENT_BATCH_MAX_ITEMS)


class SearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(max_length=2000, help_text="What to look for.")
    top_k = serializers.IntegerField(
        min_value=1, required=False, help_text=f"How many chunks (at most {settings.DOCUMENT_SEARCH_MAX_TOP_K})."
    )


class FullSyncSerializer(serializers.Serializer):
    batch_size = serializers.IntegerField(min_value=1, max_value=1000, required=False)


def absolute(request: Request | None, path: str) -> str:
    return request.build_absolute_uri(path) if request else path


class DocumentSerializer(serializers.ModelSerializer):
    group_id = serializers.UUIDField(source="batch_id", read_only=True, allow_null=True)
    status_url = serializers.SerializerMethodField()
    task_url = serializers.SerializerMethodField()

    class Meta:
        model = Document
        fields = [
            *("id", "title", "status", "source", "file_name", "content_type", "size_bytes", "checksum"),
            *("chunk_count", "embedding_model", "error", "group_id", "task_id", "status_url", "task_url"),
            *("created_at", "updated_at", "embedded_at"),
        ]
        read_only_fields = fields

    def get_status_url(self, obj: Document) -> str:
        return absolute(self.context.get("request"), url_reverse("api:document-detail", obj.pk))

    def get_task_url(self, obj: Document) -> str | None:
        if not obj.task_id:
            return None
        return absolute(self.context.get("request"), url_reverse("api:task-detail", obj.task_id))


class DocumentAcceptedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    task_id = serializers.UUIDField(allow_null=True)
    status_url = serializers.URLField()
    task_url = serializers.URLField(allow_null=True)
    duplicate = serializers.BooleanField(help_text="True when identical content of yours already existed.")


def accepted_body(request: Request, document: Document, *, duplicate: bool = False) -> dict[str, Any]:
    """The short answer to an accepted document: where to follow it."""
    full = DocumentSerializer(document, context={"request": request}).data
    return {key: full[key] for key in ("id", "status", "task_id", "status_url", "task_url")} | {"duplicate": duplicate}


DocumentBatchAcceptedSerializer = inline_serializer(
    "DocumentBatchAccepted",
    {
        "id": serializers.UUIDField(help_text="The group id."),
        "group_id": serializers.UUIDField(),
        "status": serializers.CharField(),
        "task_ids": serializers.ListField(child=serializers.UUIDField()),
        "status_url": serializers.URLField(help_text="The list of the group's documents."),
        "documents": DocumentAcceptedSerializer(many=True),
    },
)

SearchResultsSerializer = inline_serializer(
    "DocumentSearchResults",
    {
        "query": serializers.CharField(),
        "top_k": serializers.IntegerField(),
        "results": inline_serializer(
            "DocumentSearchHit",
            {
                "document_id": serializers.IntegerField(),
                "document_title": serializers.CharField(),
                "chunk_id": serializers.IntegerField(),
                "index": serializers.IntegerField(),
                "text": serializers.CharField(),
                "score": serializers.FloatField(help_text="Cosine similarity; 1 is identical."),
            },
            many=True,
        ),
    },
)

FullSyncAcceptedSerializer = inline_serializer(
    "FullSyncAccepted",
    {
        "id": serializers.UUIDField(help_text="The task id."),
        "status": serializers.CharField(),
        "task_id": serializers.UUIDField(),
        "status_url": serializers.URLField(help_text="The task's status and progress."),
        "batch_size": serializers.IntegerField(),
    },
)
