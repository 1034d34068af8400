"""Admin for documents (status, chunk counts, re-sync), upload batches and the sync queue."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from sync.models import Document, DocumentBatch, SyncQueueItem
from sync.services.sync import documents_resync_start, sync_queue_enqueue, sync_queue_process_start

TEXT_PREVIEW_CHARS = 2000


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "owner", "status", "chunk_count", "embedding_model", "embedded_at", "created_at"]
    list_filter = ["status", "source", "embedding_model", ("owner", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["owner"]
    search_fields = ["title", "file_name", "owner__username", "=checksum"]
    date_hierarchy = "created_at"
    exclude = ["text"]
    readonly_fields = [
        *("owner", "batch", "title", "source", "file_name", "content_type", "size_bytes", "checksum", "status"),
        *("error", "chunk_count", "embedding_model", "generation", "last_generation", "task_id"),
        *("created_at", "updated_at", "embedded_at", "text_preview"),
    ]
    actions = ["resync_now", "add_to_sync_queue"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Document]:
        queryset = super().get_queryset(request)
        # The change page shows a preview; lists never load whole texts.
        return (
            queryset
            if request.resolver_match and "object_id" in request.resolver_match.kwargs
            else queryset.defer("text")
        )

    @admin.display(description="Text (beginning)")
    def text_preview(self, obj: Document) -> str:
        return obj.text[:TEXT_PREVIEW_CHARS] + ("…" if len(obj.text) > TEXT_PREVIEW_CHARS else "")

    @admin.action(description="Re-sync now (embed again in one background task)")
    def resync_now(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        ids = list(queryset.exclude(status=Document.Status.DELETING).values_list("pk", flat=True))
        record = documents_resync_start(user=request.user, document_ids=ids)
        self.message_user(request, f"Re-sync of {len(ids)} document(s) started: task {record.pk}.", messages.SUCCESS)

    @admin.action(description="Add to the sync queue (embedded again by the next periodic run)")
    def add_to_sync_queue(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        added = sync_queue_enqueue(document_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"{added} document(s) added to the sync queue.", messages.SUCCESS)


@admin.register(DocumentBatch)
class DocumentBatchAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "created_at"]
    list_select_related = ["owner"]
    search_fields = ["=id", "owner__username"]
    readonly_fields = ["id", "owner", "created_at"]


@admin.register(SyncQueueItem)
class SyncQueueItemAdmin(admin.ModelAdmin):
    list_display = ["document", "reason", "enqueued_at", "claimed_at", "claimed_by", "attempts"]
    list_filter = ["reason", ("claimed_at", admin.EmptyFieldListFilter)]
    list_select_related = ["document"]
    search_fields = ["document__title", "claimed_by"]
    readonly_fields = ["document", "reason", "enqueued_at", "claimed_at", "claimed_by", "attempts"]
    actions = ["process_queue_now"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[SyncQueueItem]:
        return super().get_queryset(request).defer("document__text")

    @admin.action(description="Process the sync queue now (all waiting items, not only the selected)")
    def process_queue_now(self, request: HttpRequest, queryset: QuerySet[SyncQueueItem]) -> None:
        record = sync_queue_process_start(user=request.user)
        self.message_user(request, f"Processing the sync queue: task {record.pk}.", messages.SUCCESS)
