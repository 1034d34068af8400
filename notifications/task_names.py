"""Task names, shared by the services that dispatch them and the tasks that define them."""

DELIVER_WEBHOOK = "notifications.deliver_webhook"
SEND_NOTIFICATION_EMAIL = "notifications.send_notification_email"
SEND_QUERY_RESULT_TO_USERS = "notifications.send_query_result_to_users"
SEND_USAGE_STATISTICS = "notifications.send_usage_statistics"
SEND_SYSTEM_NOTIFICATION = "notifications.send_system_notification"
FAN_OUT_BATCH = "notifications.fan_out_batch"
