"""URLs: the admin, the v1 API, its schema and docs."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from jobs.admin_views import operations_view
from jobs.api import (
    ActiveTasksView,
    HealthView,
    TaskDetailView,
    TaskListView,
    TaskRevokeView,
    TriggerView,
    WorkersView,
)
from jobs.streams import task_events_view
from notifications import urls as notification_urls
from prompts.api import ConversationViewSet, ImageFileView, ImageView, PromptViewSet, QueryView, TranslationView
from sync.api import DocumentViewSet, FullSyncView
from users.api import MeUsageView, MeView

router = DefaultRouter()
router.register("prompts", PromptViewSet, basename="prompt")
router.register("conversations", ConversationViewSet, basename="conversation")
router.register("documents", DocumentViewSet, basename="document")
router.register(*notification_urls.WEBHOOKS_ROUTE)

api_v1 = [
    *router.urls,
    path("translations/", TranslationView.as_view(), name="translation-create"),
    path("query/", QueryView.as_view(), name="query-create"),
    path("images/", ImageView.as_view(), name="image-create"),
    path("images/<int:pk>/file/", ImageFileView.as_view(), name="image-file"),
    path("tasks/", TaskListView.as_view(), name="task-list"),
    path("tasks/active/", ActiveTasksView.as_view(), name="task-active"),
    path("tasks/workers/", WorkersView.as_view(), name="task-workers"),
    path("tasks/trigger/<slug:job>/", TriggerView.as_view(), name="task-trigger"),
    path("tasks/<str:task_id>/", TaskDetailView.as_view(), name="task-detail"),
    path("tasks/<str:task_id>/revoke/", TaskRevokeView.as_view(), name="task-revoke"),
    path("tasks/<str:task_id>/events/", task_events_view, name="task-events"),
    path("health/", HealthView.as_view(), name="health"),
    path("me/", MeView.as_view(), name="me"),
    path("me/usage/", MeUsageView.as_view(), name="me-usage"),
    *notification_urls.urlpatterns,
    path("sync/full/", FullSyncView.as_view(), name="sync-full"),
]

urlpatterns = [
    path("admin/operations/", admin.site.admin_view(operations_view), name="admin-operations"),
    path("admin/dashboard/", include("jobs.admin_urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("api-auth/", include("rest_framework.urls")),
]
if settings.BENCH_BASELINE_VIEWS:  # bench_accept's floor view (bench/baseline_urls.py), never in a deployment
    urlpatterns.append(path("bench/", include("bench.baseline_urls")))

# Errors raised before a view runs (no route matches, a bad Host) are JSON under /api/ too.
handler400 = "common.views.bad_request"
handler403 = "common.views.permission_denied"
handler404 = "common.views.page_not_found"
handler500 = "common.views.server_error"
