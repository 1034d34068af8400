"""Admin for webhook endpoints, deliveries (retry now), notifications and system notifications (send)."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from notifications.models import Delivery, FanOut, Notification, NotificationPreference, SystemNotification
from notifications.models import WebhookEndpoint as Endpoint
from notifications.services import delivery_retry_now, system_notification_send_request, webhook_endpoint_enable


@admin.register(Endpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["id", "url", "owner", "is_active", "consecutive_failures", "disabled_at", "created_at"]
    list_filter = ["is_active"]
    list_select_related = ["owner"]
    search_fields = ["url", "owner__username"]
    # The secret is never shown again after creation, here neither: only its first characters.
    exclude = ["secret"]
    # The URL was checked on creation; changing it goes through the API (a new endpoint), not here.
    readonly_fields = [
        *("owner", "url", "secret_hint", "consecutive_failures", "disabled_at", "disabled_reason", "created_at"),
    ]
    actions = ["enable", "disable"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # endpoints are created through the API, which checks the URL and shows the secret

    @admin.action(description="Enable (and reset the failure count)")
    def enable(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        for endpoint in queryset:
            webhook_endpoint_enable(endpoint=endpoint)
        self.message_user(request, f"{queryset.count()} endpoint(s) enabled.")

    @admin.action(description="Disable")
    def disable(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        count = queryset.filter(is_active=True).update(is_active=False, disabled_reason="Disabled by an operator.")
        self.message_user(request, f"{count} endpoint(s) disabled.")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "event", "endpoint", "state", "attempts", "status_code", "next_attempt_at", "created_at"]
    list_filter = ["state", "event"]
    list_select_related = ["endpoint"]
    search_fields = ["=event_id", "endpoint__url", "endpoint__owner__username", "last_error"]
    readonly_fields = [f.name for f in Delivery._meta.fields]
    date_hierarchy = "created_at"
    actions = ["retry_now"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Retry now (a fresh round of attempts)")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        sent = sum(delivery_retry_now(delivery=delivery) for delivery in queryset)
        skipped = queryset.count() - sent
        self.message_user(request, f"{sent} delivery(ies) sent again.")
        if skipped:
            self.message_user(
                request, f"{skipped} skipped: delivered already, or the endpoint is disabled.", messages.WARNING
            )


@admin.register(SystemNotification)
class SystemNotificationAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "tier", "status", "recipients", "created_by", "created_at", "sent_at"]
    list_filter = ["tier"]
    list_select_related = ["tier", "created_by", "fan_out"]
    search_fields = ["title", "body"]
    readonly_fields = ["created_by", "created_at", "sent_at", "status", "recipients"]
    actions = ["send"]

    @admin.display(description="recipients")
    def recipients(self, obj: SystemNotification) -> int:
        fan_out = getattr(obj, "fan_out", None)
        return fan_out.recipients if fan_out is not None else 0

    def get_readonly_fields(self, request: HttpRequest, obj: SystemNotification | None = None) -> list[str]:
        if obj is not None and obj.sent_at is not None:  # what was sent stays as it was sent
            return [*self.readonly_fields, "title", "body", "tier"]
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: SystemNotification, form: object, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description="Send to its users")
    def send(self, request: HttpRequest, queryset: QuerySet[SystemNotification]) -> None:
        sent = sum(bool(system_notification_send_request(system_notification=n)) for n in queryset)
        self.message_user(request, f"{sent} system notification(s) being sent.")
        if sent < queryset.count():
            self.message_user(request, f"{queryset.count() - sent} had been sent already.", messages.WARNING)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "user", "event", "email_state", "created_at"]
    list_filter = ["event", "email_state"]
    list_select_related = ["user"]
    search_fields = ["title", "user__username", "=event_id"]
    readonly_fields = [f.name for f in Notification._meta.fields]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(FanOut)
class FanOutAdmin(admin.ModelAdmin):
    list_display = ["key", "kind", "state", "batches", "recipients", "started_at", "finished_at"]
    list_filter = ["kind", "state"]
    readonly_fields = [f.name for f in FanOut._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "event", "email"]
    list_filter = ["event", "email"]
    list_select_related = ["user"]
    search_fields = ["user__username"]
