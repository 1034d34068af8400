"""URLs: the admin, the v1 API, its schema and docs."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from jobs.api import HealthView, TaskDetailView
from prompts.api import PromptViewSet
from sync.api import DocumentViewSet, FullSyncView

router = DefaultRouter()
router.register("prompts", PromptViewSet, basename="prompt")
router.register("documents", DocumentViewSet, basename="document")

api_v1 = [
    *router.urls,
    path("tasks/<str:task_id>/", TaskDetailView.as_view(), name="task-detail"),
    path("health/", HealthView.as_view(), name="health"),
    path("sync/full/", FullSyncView.as_view(), name="sync-full"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("api-auth/", include("rest_framework.urls")),
]
