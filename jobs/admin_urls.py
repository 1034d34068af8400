"""The dashboard's URLs under /admin/dashboard/, each behind the admin's staff login."""

from django.contrib import admin
from django.urls import path

from jobs.admin_views import dashboard_data_view, dashboard_panels_view, dashboard_retry_view, dashboard_view

urlpatterns = [
    path("", admin.site.admin_view(dashboard_view), name="admin-dashboard"),
    path("panels/", admin.site.admin_view(dashboard_panels_view), name="admin-dashboard-panels"),
    path("data/", admin.site.admin_view(dashboard_data_view), name="admin-dashboard-data"),
    path("retry/<uuid:task_id>/", admin.site.admin_view(dashboard_retry_view), name="admin-dashboard-retry"),
]
