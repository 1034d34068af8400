"""Admin for task records."""

from django.contrib import admin

from jobs.models import TaskRecord


@admin.register(TaskRecord)
class TaskRecordAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "owner", "queue", "state", "progress_percent", "sends", "created_at", "finished_at"]
    list_filter = ["state", "name", "queue"]
    list_select_related = ["owner"]
    search_fields = ["=id", "name", "owner__username", "target_id"]
    readonly_fields = [f.name for f in TaskRecord._meta.fields]
    date_hierarchy = "created_at"
