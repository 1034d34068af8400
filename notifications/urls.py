"""Notification routes, included under /api/v1/ by config/urls.py."""

from django.urls import path

from notifications.api import (
    DeliveryListView,
    EmailPreferencesView,
    NotificationsView,
    SystemNotificationCreateView,
    SystemNotificationDetailView,
    WebhookEndpointViewSet,
)

# Registered on the API router by config/urls.py: /webhooks/ and /webhooks/{id}/.
WEBHOOKS_ROUTE = ("webhooks", WebhookEndpointViewSet, "webhook")

urlpatterns = [
    path("notifications/", NotificationsView.as_view(), name="notification-list"),
    path("notifications/deliveries/", DeliveryListView.as_view(), name="delivery-list"),
    path("notifications/preferences/", EmailPreferencesView.as_view(), name="notification-preferences"),
    path("notifications/system/", SystemNotificationCreateView.as_view(), name="system-notification-create"),
    path("notifications/system/<int:pk>/", SystemNotificationDetailView.as_view(), name="system-notification-detail"),
]
