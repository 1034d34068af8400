"""Document views: thin; validate, call one service or selector, answer."""

import math
from dataclasses import asdict
from typing import Any

import django_filters
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ai.providers import BudgetExhausted, ProviderError
from sync.api.serializers import (
    DocumentAcceptedSerializer,
    DocumentBatchAcceptedSerializer,
    DocumentBatchSerializer,
    DocumentFileSerializer,
    DocumentSerializer,
    DocumentTextSerializer,
    FullSyncAcceptedSerializer,
    FullSyncSerializer,
    SearchQuerySerializer,
    SearchResultsSerializer,
    absolute,
    accepted_body,
)
from sync.exceptions import DocumentRejected, DocumentTooLarge
from sync.models import Document, DocumentBatch
from sync.selectors import chunk_search, document_batch_list, document_list, search_top_k
from sync.services.documents import (
    DocumentAccepted,
    DocumentText,
    document_batch_create,
    document_create,
    document_create_from_file,
    document_delete,
    document_max_bytes,
)
from sync.services.sync import full_sync_start

# Multipart boundaries and the other fields; a body larger than the limit plus this is refused unread.
BODY_OVERHEAD_BYTES = 64 * 1024

CREATE_DESCRIPTION = """\
Upload `{title, text}` as JSON, or a file (multipart field `file`, optional `title`): plain text, \
Markdown, HTML or PDF, up to your tier's `max_document_bytes`. 413 above it (before the body is read \
when Content-Length already says so), 415 for other types, 400 for empty, unreadable or corrupt files \
and files without text. Answers 202 with the task that embeds it. A JSON body is read into memory, so it \
may be at most 2.5 MB (`DATA_UPLOAD_MAX_MEMORY_SIZE`); larger documents go as files, which are streamed.

Identical content (the same extracted text, by SHA-256) that you already uploaded is not embedded \
twice: the answer is the existing document with `duplicate: true` and 200, since no work was started \
(202 if the earlier copy had FAILED and is embedded again). Embedding costs provider calls and storage, \
and two copies would fill search results with the same chunk twice. Other users' documents never count."""


class Refused(APIException):
    """A request refused with its own status code (413, 415, 400, 503)."""

    def __init__(self, status_code: int, detail: dict[str, Any], *, wait: float | None = None) -> None:
        self.status_code = status_code
        super().__init__()
        self.detail = detail  # as given: numbers stay numbers
        self.wait = math.ceil(wait) if wait else None  # DRF's handler turns it into Retry-After


def _refusal(exc: DocumentRejected) -> Refused:
    if isinstance(exc, DocumentTooLarge):
        return Refused(exc.status_code, {"detail": str(exc), "max_bytes": exc.max_bytes})
    if exc.status_code == 400:
        return Refused(400, {exc.field: [str(exc)]})
    return Refused(exc.status_code, {"detail": str(exc)})


def _json_too_big() -> Refused:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    message = f"A JSON body may be at most {limit:,} bytes; upload a larger document as a file (multipart)."
    return Refused(413, {"detail": message, "max_bytes": limit})


def _refuse_oversized_body(request: Request) -> None:
    """413 from the Content-Length header alone, before the body is parsed."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    max_bytes = document_max_bytes(user=request.user)
    if length > max_bytes + BODY_OVERHEAD_BYTES:
        message = f"The request body is {length:,} bytes; your tier allows documents of at most {max_bytes:,} bytes."
        raise Refused(413, {"detail": message, "max_bytes": max_bytes})
    json_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if json_limit is not None and length > json_limit and not request.content_type.startswith("multipart/"):
        raise _json_too_big()


def _request_data(request: Request) -> Any:
    """The parsed body; Django reads non-file bodies into memory only up to DATA_UPLOAD_MAX_MEMORY_SIZE."""
    try:
        return request.data
    except RequestDataTooBig:  # no (or a false) Content-Length got past the check above
        raise _json_too_big() from None


def _accepted_response(request: Request, accepted: DocumentAccepted) -> Response:
    body = accepted_body(request, accepted.document, duplicate=accepted.duplicate)
    code = status.HTTP_202_ACCEPTED if accepted.started else status.HTTP_200_OK
    return Response(body, status=code, headers={"Location": body["status_url"]})


def _visible_batches(request: Request | None) -> Any:
    # Another user's batch id is refused exactly like one that does not exist (no existence oracle).
    return document_batch_list(user=request.user) if request is not None else DocumentBatch.objects.none()


class DocumentFilter(django_filters.FilterSet):
    batch = django_filters.ModelChoiceFilter(queryset=_visible_batches, help_text="A group id from a batch upload.")

    class Meta:
        model = Document
        fields = ["status", "batch"]


class DocumentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your documents: upload text or files, follow their embedding, search them, delete them."""

    serializer_class = DocumentSerializer
    parser_classes = [JSONParser, MultiPartParser]
    filterset_class = DocumentFilter
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self) -> QuerySet[Document]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Document.objects.none()
        return document_list(user=self.request.user)

    @extend_schema(
        request={"application/json": DocumentTextSerializer, "multipart/form-data": DocumentFileSerializer},
        responses={202: DocumentAcceptedSerializer, 200: DocumentAcceptedSerializer},
        description=CREATE_DESCRIPTION,
    )
    def create(self, request: Request) -> Response:
        _refuse_oversized_body(request)
        multipart = request.content_type.startswith("multipart/")
        incoming = (DocumentFileSerializer if multipart else DocumentTextSerializer)(data=_request_data(request))
        incoming.is_valid(raise_exception=True)
        try:
            if multipart:
                accepted = document_create_from_file(user=request.user, **incoming.validated_data)
            else:
                accepted = document_create(user=request.user, upload=DocumentText(**incoming.validated_data))
        except DocumentRejected as exc:
            raise _refusal(exc) from None
        return _accepted_response(request, accepted)

    @extend_schema(
        request=DocumentBatchSerializer,
        responses={202: DocumentBatchAcceptedSerializer},
        description=(
            f"Up to {settings.DOCUMENT_BATCH_MAX_ITEMS} `{{title, text}}` documents at once, all or none; together "
            "they may be at most your tier's `max_document_bytes`. One task per document (`task_ids`, in order; a "
            "duplicate names its earlier document and task) and a group id that filters the list (`?batch=`)."
        ),
    )
    @action(detail=False, methods=["post"], parser_classes=[JSONParser])
    def batch(self, request: Request) -> Response:
        _refuse_oversized_body(request)
        incoming = DocumentBatchSerializer(data=_request_data(request))
        incoming.is_valid(raise_exception=True)
        uploads = [DocumentText(**item) for item in incoming.validated_data["documents"]]
        try:
            batch, accepted = document_batch_create(user=request.user, uploads=uploads)
        except DocumentRejected as exc:
            raise _refusal(exc) from None
        documents = [accepted_body(request, a.document, duplicate=a.duplicate) for a in accepted]
        status_url = absolute(request, reverse("api:document-list")) + f"?batch={batch.pk}"
        body = {
            "id": batch.pk,
            "group_id": batch.pk,
            "status": "PENDING",
            "task_ids": [document["task_id"] for document in documents],
            "status_url": status_url,
            "documents": documents,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": status_url})

    @extend_schema(
        request=None,
        responses={202: DocumentAcceptedSerializer},
        description="Search stops seeing the document at once; a task deletes its chunks, then the document.",
    )
    def destroy(self, request: Request, pk: str) -> Response:
        document = document_delete(document_id=self.get_object().pk)
        if document is None:  # its task finished between the two calls above
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(accepted_body(request, document), status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, required=True, description="What to look for."),
            OpenApiParameter(
                "top_k", int, description=f"How many chunks; at most {settings.DOCUMENT_SEARCH_MAX_TOP_K}."
            ),
        ],
        responses=SearchResultsSerializer,
        description="Semantic search over the chunks of your own documents (staff too), nearest first.",
    )
    @action(detail=False, methods=["get"])
    def search(self, request: Request) -> Response:
        incoming = SearchQuerySerializer(data=request.query_params)
        incoming.is_valid(raise_exception=True)
        query = incoming.validated_data["q"]
        top_k = search_top_k(incoming.validated_data.get("top_k"))
        try:
            hits = chunk_search(user=request.user, query=query, top_k=top_k)
        except ProviderError as exc:
            raise Refused(503, {"detail": f"The query could not be embedded: {exc}"}) from None
        except BudgetExhausted as exc:
            raise Refused(503, {"detail": str(exc)}, wait=exc.retry_after) from None
        return Response({"query": query, "top_k": top_k, "results": [asdict(hit) for hit in hits]})


class FullSyncView(APIView):
    """Staff: embed every document again, in batches, with progress on the task."""

    permission_classes = [IsAdminUser]

    @extend_schema(request=FullSyncSerializer, responses={202: FullSyncAcceptedSerializer})
    def post(self, request: Request) -> Response:
        incoming = FullSyncSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        record = full_sync_start(user=request.user, batch_size=incoming.validated_data.get("batch_size"))
        status_url = absolute(request, reverse("api:task-detail", args=[record.pk]))
        body = {
            "id": record.pk,
            "status": "PENDING",
            "task_id": record.pk,
            "status_url": status_url,
            "batch_size": record.kwargs["batch_size"],
        }
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": status_url})
