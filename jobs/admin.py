"""Admin for task records."""

from django.contrib import admin

from jobs.models import FairLane, TaskRecord


@admin.register(TaskRecord)
class TaskRecordAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "owner", "queue", "state", "progress_percent", "sends", "created_at", "finished_at"]
    list_filter = ["state", "name", "queue"]
    list_select_related = ["owner"]
    search_fields = ["=id", "name", "owner__username", "target_id"]
    readonly_fields = [f.name for f in TaskRecord._meta.fields]
    date_hierarchy = "created_at"


@admin.register(FairLane)
class FairLaneAdmin(admin.ModelAdmin):
    """Waiting and running fair-share work per user and queue."""

    list_display = ["owner", "queue", "waiting", "in_flight", "cap", "weight", "pass_value", "updated_at"]
    list_filter = ["queue"]
    list_select_related = ["owner"]
    search_fields = ["owner__username"]
    ordering = ["-waiting"]
    readonly_fields = [f.name for f in FairLane._meta.fields]
