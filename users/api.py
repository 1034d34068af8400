"""The caller's own account: tier, today's quota, daily usage."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from users.selectors import usage_days, user_quota

MAX_USAGE_DAYS = 366


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    tier = inline_serializer(
        "TierSummary",
        {"slug": serializers.CharField(), "name": serializers.CharField(), "queue_priority": serializers.CharField()},
    )
    daily_request_limit = serializers.IntegerField()
    used_today = serializers.IntegerField()
    remaining_today = serializers.IntegerField()
    tokens_today = serializers.IntegerField()
    max_prompt_length = serializers.IntegerField()
    reset_at = serializers.DateTimeField()


class UsageDaySerializer(serializers.Serializer):
    date = serializers.DateField()
    requests = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    tokens = serializers.IntegerField()
    mean_latency_ms = serializers.IntegerField(allow_null=True)


class UsageQuerySerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=MAX_USAGE_DAYS, default=7)


class MeView(APIView):
    """Your tier, today's limit, what is used and left, and when it resets."""

    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(user_quota(user=request.user)).data)


class MeUsageView(APIView):
    """Your numbers per day, newest first: requests, completed, failed, tokens, mean latency."""

    @extend_schema(
        parameters=[OpenApiParameter("days", int, description=f"1 to {MAX_USAGE_DAYS}, default 7")],
        responses=UsageDaySerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        days = usage_days(user=request.user, days=query.validated_data["days"])
        return Response(UsageDaySerializer(days, many=True).data)
