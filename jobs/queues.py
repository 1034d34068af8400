"""Queue names and the routing rules that every dispatch follows, in one place."""

from kombu import Queue

PROMPTS_HIGH = "prompts.high"
PROMPTS_NORMAL = "prompts.normal"
PROMPTS_LOW = "prompts.low"
SYNC = "sync"
NOTIFICATIONS = "notifications"
MAINTENANCE = "maintenance"

PROMPT_QUEUE_BY_PRIORITY = {"high": PROMPTS_HIGH, "normal": PROMPTS_NORMAL, "low": PROMPTS_LOW}
PROMPT_QUEUES = (PROMPTS_HIGH, PROMPTS_NORMAL, PROMPTS_LOW)
BACKGROUND_QUEUES = (SYNC, NOTIFICATIONS, MAINTENANCE)
ALL_QUEUES = PROMPT_QUEUES + BACKGROUND_QUEUES

CELERY_QUEUES = tuple(Queue(name, routing_key=name) for name in ALL_QUEUES)


def prompt_queue_for(priority: str) -> str:
    """The prompt queue of a tier's priority (unknown priorities run as normal)."""
    return PROMPT_QUEUE_BY_PRIORITY.get(priority, PROMPTS_NORMAL)
