"""Writes for notifications, split by sub-domain; the public ones are importable from here."""

from notifications.services.deliveries import (
    deliveries_record,
    delivery_fail,
    delivery_retry_now,
    webhook_delivery_attempt,
)
from notifications.services.emails import (
    email_preferences_get,
    email_preferences_set,
    notification_create,
    notification_email_fail,
    notification_emails_send,
)
from notifications.services.emit import notification_event_emit
from notifications.services.endpoints import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_enable,
    webhook_sign,
)
from notifications.services.fan_out import (
    fan_out_batch_run,
    fan_out_fail,
    system_notification_create,
    system_notification_send,
    system_notification_send_request,
    usage_statistics_send,
)

__all__ = [
    "deliveries_record",
    "delivery_fail",
    "delivery_retry_now",
    "email_preferences_get",
    "email_preferences_set",
    "fan_out_batch_run",
    "fan_out_fail",
    "notification_create",
    "notification_email_fail",
    "notification_emails_send",
    "notification_event_emit",
    "system_notification_create",
    "system_notification_send",
    "system_notification_send_request",
    "usage_statistics_send",
    "webhook_delivery_attempt",
    "webhook_endpoint_create",
    "webhook_endpoint_delete",
    "webhook_endpoint_enable",
    "webhook_sign",
]
