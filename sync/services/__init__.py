"""Writes for documents: accepting them, embedding them, the sync queue, deletion.

The task names live here because the services dispatch them and the tasks register under them.
"""

SYNC_TASK = "sync.sync_embeddings"
DELETE_TASK = "sync.delete_document_embeddings"
BATCH_TASK = "sync.process_documents_batch"
FULL_SYNC_TASK = "sync.trigger_full_sync"
QUEUE_TASK = "sync.process_sync_queue"
