"""Notification API: webhook endpoints, one's notifications and deliveries, email preferences,
system notifications (staff)."""

import django_filters
from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, mixins, serializers, status, viewsets
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.fields import StrictCharField
from notifications import events, selectors
from notifications.models import Delivery, Notification, SystemNotification, WebhookEndpoint
from notifications.services import (
    email_preferences_get,
    email_preferences_set,
    system_notification_create,
    webhook_endpoint_create,
    webhook_endpoint_delete,
)
from users.models import Tier

SIGNATURE_DOCS = """
Each delivery is a `POST` with a JSON body `{"id", "event", "created_at", "data"}` and headers
`X-Webhook-Id` (the event's id, the same on every retry: use it to ignore duplicates),
`X-Webhook-Event`, `X-Webhook-Timestamp` (Unix seconds of this attempt) and
`X-Signature: sha256=<hex>`, the HMAC-SHA256 of `"{timestamp}.{raw body}"` keyed with the
endpoint's secret. To verify: recompute it over the raw body bytes, compare in constant time,
and refuse timestamps more than five minutes old. Answer 2xx within the timeout; 429 and 5xx
are retried with exponential backoff (Retry-After is honoured), other answers are not, and
redirects are never followed. The secret is shown once, in the answer to the creation.
See docs/notifications.md for a ten-line receiver.
"""


class WebhookEndpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "events",
            "description",
            "is_active",
            "consecutive_failures",
            "disabled_at",
            "disabled_reason",
            "created_at",
        ]
        read_only_fields = fields


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(help_text="The signing secret. Shown only now: store it.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookEndpointCreateSerializer(serializers.Serializer):
    url = StrictCharField(max_length=2000, help_text="An http(s) URL on a public address.")
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=events.WEBHOOK_EVENT_CHOICES), allow_empty=False
    )
    description = StrictCharField(max_length=200, required=False, allow_blank=True)


@extend_schema(description=SIGNATURE_DOCS)
class WebhookEndpointViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your webhook endpoints: the events they receive, signed with their secret."""

    serializer_class = WebhookEndpointSerializer

    def get_queryset(self) -> QuerySet[WebhookEndpoint]:
        if getattr(self, "swagger_fake_view", False):
            return WebhookEndpoint.objects.none()
        return selectors.webhook_endpoint_list(user=self.request.user)

    @extend_schema(request=WebhookEndpointCreateSerializer, responses={201: WebhookEndpointCreatedSerializer})
    def create(self, request: Request) -> Response:
        incoming = WebhookEndpointCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_create(user=request.user, **incoming.validated_data)
        return Response(WebhookEndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: WebhookEndpoint) -> None:
        webhook_endpoint_delete(endpoint=instance)


class NotificationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Notification
        fields = ["id", "event", "event_id", "title", "body", "payload", "email_state", "emailed_at", "created_at"]
        read_only_fields = fields


class DeliverySerializer(serializers.ModelSerializer):
    endpoint_url = serializers.CharField(source="endpoint.url", read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "endpoint",
            "endpoint_url",
            "event",
            "event_id",
            "payload",
            "state",
            "attempts",
            "status_code",
            "last_error",
            "next_attempt_at",
            "delivered_at",
            "created_at",
        ]
        read_only_fields = fields


class NotificationsView(APIView):
    """Your newest notifications and webhook deliveries (`limit` of each, at most 100)."""

    @extend_schema(
        parameters=[OpenApiParameter("limit", int, description="How many of each (default 20, at most 100).")],
        responses=inline_serializer(
            "NotificationsAndDeliveries",
            {"notifications": NotificationSerializer(many=True), "deliveries": DeliverySerializer(many=True)},
        ),
    )
    def get(self, request: Request) -> Response:
        try:
            limit = max(1, min(100, int(request.query_params.get("limit", 20))))
        except ValueError:
            raise serializers.ValidationError({"limit": "Must be a whole number."}) from None
        notifications = selectors.notification_list(user=request.user)[:limit]
        deliveries = selectors.delivery_list(user=request.user)[:limit]
        return Response(
            {
                "notifications": NotificationSerializer(notifications, many=True).data,
                "deliveries": DeliverySerializer(deliveries, many=True).data,
            }
        )


def _own_endpoints(request: Request | None) -> QuerySet[WebhookEndpoint]:
    # Another user's endpoint id is refused exactly like one that does not exist (no existence oracle).
    if request is None:
        return WebhookEndpoint.objects.none()
    return selectors.webhook_endpoint_list(user=request.user)


class DeliveryFilter(django_filters.FilterSet):
    endpoint = django_filters.ModelChoiceFilter(queryset=_own_endpoints)

    class Meta:
        model = Delivery
        fields = ["state", "event", "endpoint"]


class DeliveryListView(generics.ListAPIView):
    """Your whole delivery log, newest first; filter by state, event or endpoint."""

    serializer_class = DeliverySerializer
    filterset_class = DeliveryFilter

    def get_queryset(self) -> QuerySet[Delivery]:
        if getattr(self, "swagger_fake_view", False):
            return Delivery.objects.none()
        return selectors.delivery_list(user=self.request.user)


class EmailPreferencesSerializer(serializers.Serializer):
    email = serializers.DictField(
        child=serializers.BooleanField(), help_text="Event -> whether you want it by email. Omitted events keep theirs."
    )


class EmailPreferencesView(APIView):
    """Which events you get by email; PUT or PATCH `{"email": {"prompt.completed": true, "system": false}}`."""

    @extend_schema(responses=EmailPreferencesSerializer)
    def get(self, request: Request) -> Response:
        return Response({"email": email_preferences_get(user=request.user)})

    @extend_schema(request=EmailPreferencesSerializer, responses=EmailPreferencesSerializer)
    def put(self, request: Request) -> Response:
        incoming = EmailPreferencesSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        preferences = email_preferences_set(user=request.user, preferences=incoming.validated_data["email"])
        return Response({"email": preferences})

    patch = put


class SystemNotificationCreateSerializer(serializers.Serializer):
    title = StrictCharField(max_length=200)
    body = StrictCharField()
    tier = serializers.SlugRelatedField(
        slug_field="slug", queryset=Tier.objects.all(), required=False, allow_null=True, help_text="Empty: everyone."
    )


class SystemNotificationSerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True, help_text="DRAFT, PENDING, RUNNING, DONE or FAILED.")
    tier = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    recipients = serializers.SerializerMethodField()
    status_url = serializers.SerializerMethodField()

    class Meta:
        model = SystemNotification
        fields = ["id", "title", "body", "tier", "status", "recipients", "status_url", "created_at", "sent_at"]
        read_only_fields = fields

    def get_recipients(self, obj: SystemNotification) -> int:
        fan_out = getattr(obj, "fan_out", None)
        return fan_out.recipients if fan_out is not None else 0

    def get_status_url(self, obj: SystemNotification) -> str:
        path = reverse("api:system-notification-detail", args=[obj.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class SystemNotificationAcceptedSerializer(SystemNotificationSerializer):
    task_id = serializers.CharField()

    class Meta(SystemNotificationSerializer.Meta):
        fields = [*SystemNotificationSerializer.Meta.fields, "task_id"]
        read_only_fields = fields


class SystemNotificationCreateView(APIView):
    """Send a message to every user or to one tier (staff only); answers 202 at once."""

    permission_classes = [IsAdminUser]

    @extend_schema(request=SystemNotificationCreateSerializer, responses={202: SystemNotificationAcceptedSerializer})
    def post(self, request: Request) -> Response:
        incoming = SystemNotificationCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        notification, task_id = system_notification_create(created_by=request.user, **incoming.validated_data)
        notification.task_id = task_id
        body = SystemNotificationAcceptedSerializer(notification, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["status_url"]})


class SystemNotificationDetailView(generics.RetrieveAPIView):
    """A system notification and how far its sending has come (staff only)."""

    permission_classes = [IsAdminUser]
    serializer_class = SystemNotificationSerializer

    def get_queryset(self) -> QuerySet[SystemNotification]:
        return selectors.system_notification_list()
