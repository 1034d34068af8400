"""The events a user can subscribe a webhook endpoint to, and the ones that can be emailed."""

PROMPT_COMPLETED = "prompt.completed"
PROMPT_FAILED = "prompt.failed"
QUERY_COMPLETED = "query.completed"
DOCUMENT_SYNCED = "document.synced"
USAGE_STATISTICS = "usage.statistics"
SYSTEM = "system"
# Not subscribable by webhooks (the endpoint in question is the one that stopped working).
WEBHOOK_DISABLED = "webhook.disabled"

WEBHOOK_EVENTS = (PROMPT_COMPLETED, PROMPT_FAILED, QUERY_COMPLETED, DOCUMENT_SYNCED, USAGE_STATISTICS, SYSTEM)
EMAIL_EVENTS = (*WEBHOOK_EVENTS, WEBHOOK_DISABLED)

WEBHOOK_EVENT_CHOICES = [(event, event) for event in WEBHOOK_EVENTS]
EMAIL_EVENT_CHOICES = [(event, event) for event in EMAIL_EVENTS]
