"""Errors the users app raises into the API."""

from datetime import datetime

from rest_framework.exceptions import Throttled


class DailyLimitExceeded(Throttled):
    """429 with Retry-After: the user's tier allows no more requests today."""

    def __init__(self, *, limit: int, used: int, reset_at: datetime, wait_seconds: int) -> None:
        super().__init__(wait=wait_seconds)
        # Plain values (DRF would turn every value into a string), rendered as the JSON body.
        self.detail = {
            "detail": f"Daily request limit of {limit} reached; it resets at {reset_at.isoformat()}.",
            "limit": limit,
            "used": used,
            "remaining": 0,
            "reset_at": reset_at.isoformat(),
        }
