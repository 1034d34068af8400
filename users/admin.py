"""Admin for users, tiers and API keys."""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from users.models import ApiKey, Tier, UsageDaily, User
from users.services import tiers_recalculate, usage_day, user_daily_limit_reset


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "daily_request_limit", "max_prompt_length", "queue_priority", "max_in_flight"]
    search_fields = ["slug", "name"]


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    extra = 0
    can_delete = False


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = [
        "username",
        "email",
        "tier",
        "tier_pinned",
        "used_today",
        "remaining_today",
        "is_staff",
        "is_active",
    ]
    list_filter = ["tier", "tier_pinned", "is_staff", "is_active"]
    list_select_related = ["tier"]
    fieldsets = [
        *BaseUserAdmin.fieldsets,
        ("Service", {"fields": ["tier", "tier_pinned", "requests_today", "tokens_today", "usage_date"]}),
    ]
    readonly_fields = ["requests_today", "tokens_today", "usage_date"]
    inlines = [ApiKeyInline]
    actions = ["reset_daily_limit", "recalculate_tier"]

    @admin.display(description="Used today")
    def used_today(self, user: User) -> int:
        return user.requests_today if user.usage_date == usage_day() else 0

    @admin.display(description="Remaining today")
    def remaining_today(self, user: User) -> int | str:
        if user.tier is None:
            return "-"
        return max(0, user.tier.daily_request_limit - self.used_today(user))

    @admin.action(description="Reset today's limit of the selected users")
    def reset_daily_limit(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user_id in queryset.values_list("pk", flat=True):
            user_daily_limit_reset(user_id=user_id)
        self.message_user(request, f"Daily limit reset for {queryset.count()} user(s).", messages.SUCCESS)

    @admin.action(description="Recalculate the tier of the selected users (pinned ones stay)")
    def recalculate_tier(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        moved = sum(tiers_recalculate(user_id=user_id) for user_id in queryset.values_list("pk", flat=True))
        self.message_user(request, f"{moved} user(s) moved to another tier.", messages.SUCCESS)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "name", "created_at", "last_used_at", "revoked_at"]
    list_select_related = ["user"]
    search_fields = ["prefix", "user__username"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]


@admin.register(UsageDaily)
class UsageDailyAdmin(admin.ModelAdmin):
    list_display = ["date", "user", "requests", "completed", "failed", "tokens", "mean_latency_ms"]
    list_filter = ["date", ("user__tier", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["user__username"]
    date_hierarchy = "date"
    readonly_fields = [f.name for f in UsageDaily._meta.fields]
