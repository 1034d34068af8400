"""Issue 3: reset_all_daily_limits and tier calculation over many users, against raw SQL."""

import os

from django.db import connection, transaction

from bench.common import median_of, report, timed
from users.services import daily_limits_reset_all, tiers_default_ensure, tiers_recalculate

USERS = int(os.environ.get("BENCH_USERS", "1000000"))
RUNS = 3


def _seed() -> None:
    """USERS users in the free tier with some use today, and 30 days of usage for a tenth of them."""
    tiers_default_ensure()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM users_user WHERE username LIKE 'bench-%'")
        if cursor.fetchone()[0] >= USERS:
            return
        cursor.execute("DELETE FROM users_usagedaily")
        cursor.execute("DELETE FROM users_user WHERE username LIKE 'bench-%'")
        cursor.execute(
            """
            INSERT INTO users_user (password, is_superuser, username, first_name, last_name, email, is_staff,
                                    is_active, date_joined, tier_id, tier_pinned, requests_today, tokens_today)
            SELECT '!', false, 'bench-' || n, '', '', '', false, true, now(),
                   (SELECT id FROM users_tier WHERE slug = 'free'), false, 0, 0
              FROM generate_series(1, %s) AS n
            """,
            [USERS],
        )
        cursor.execute(
            """
            INSERT INTO users_usagedaily (user_id, date, requests, completed, failed, tokens, total_duration_ms,
                                          updated_at)
            SELECT u.id, current_date - d, 20 + (u.id % 7), 0, 0, 0, 0, now()
              FROM users_user u CROSS JOIN generate_series(0, 29) AS d
             WHERE u.username LIKE 'bench-%' AND u.id % 10 = 0
            """
        )
        cursor.execute("ANALYZE users_user; ANALYZE users_usagedaily")


def _dirty() -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE users_user SET requests_today = 1 + id % 50, tokens_today = id % 1000 + 1")


def _raw_reset() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE users_user SET requests_today = 0, tokens_today = 0 WHERE requests_today > 0 OR tokens_today > 0"
        )


def run() -> None:
    """Print the project's figures next to raw SQL's, measured alternately in the same run."""
    _seed()
    project, baseline = [], []
    for _ in range(RUNS):
        _dirty()
        project.append(timed(lambda: transaction.atomic(daily_limits_reset_all)()))
        _dirty()
        baseline.append(timed(lambda: transaction.atomic(_raw_reset)()))
    reset_ratio = median_of(project) / median_of(baseline)

    tiers = []
    for _ in range(2):
        with connection.cursor() as cursor:
            cursor.execute("UPDATE users_user SET tier_id = (SELECT id FROM users_tier WHERE slug = 'free')")
        tiers.append(timed(lambda: transaction.atomic(tiers_recalculate)()))
    report(
        "users",
        [
            {
                "figure": f"reset_all_daily_limits, {USERS:,} users",
                "unit": " s",
                "project": median_of(project),
                "baseline": median_of(baseline),
                "ratio": reset_ratio,
                "target": "<= 1.2",
                "ok": reset_ratio <= 1.2,
            },
            {
                "figure": f"tier calculation, {USERS:,} users ({USERS // 10:,} with 30 days of usage)",
                "unit": " s",
                "project": median_of(tiers),
                "target": "< 60 s",
                "ok": median_of(tiers) < 60,
            },
        ],
    )
