"""Document API: uploads and batches (202), list, detail, delete (202), semantic search, full re-sync."""

from sync.api.views import DocumentViewSet, FullSyncView

__all__ = ["DocumentViewSet", "FullSyncView"]
