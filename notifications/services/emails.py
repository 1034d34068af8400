"""Notifications for one user, email preferences, and sending email through Django's backend."""

import logging
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q, QuerySet
from django.template.loader import render_to_string, select_template
from django.utils import timezone

from jobs import queues
from jobs.services import task_dispatch
from notifications import events, task_names
from notifications.models import Notification, NotificationPreference
from users.models import User

logger = logging.getLogger(__name__)
EmailState = Notification.EmailState


def email_default(event: str) -> bool:
    """Whether `event` is emailed to a user who never said otherwise."""
    return event in settings.NOTIFICATIONS_EMAIL_DEFAULT_EVENTS


def email_preferences_get(*, user: User) -> dict[str, bool]:
    """Every emailable event and whether `user` wants it by email."""
    chosen = dict(NotificationPreference.objects.filter(user=user).values_list("event", "email"))
    return {event: chosen.get(event, email_default(event)) for event in events.EMAIL_EVENTS}


@transaction.atomic
def email_preferences_set(*, user: User, preferences: dict[str, bool]) -> dict[str, bool]:
    """Opt in or out of email per event; events not named keep their setting."""
    unknown = sorted(set(preferences) - set(events.EMAIL_EVENTS))
    if unknown:
        raise ValidationError({"email": f"Unknown events {unknown}; known: {', '.join(events.EMAIL_EVENTS)}."})
    for event, wanted in preferences.items():
        NotificationPreference.objects.update_or_create(user=user, event=event, defaults={"email": bool(wanted)})
    return email_preferences_get(user=user)


def email_wanted(*, user: User, event: str) -> bool:
    """True when `user` has an address and wants `event` by email."""
    if not user.email:
        return False
    chosen = NotificationPreference.objects.filter(user=user, event=event).values_list("email", flat=True).first()
    return email_default(event) if chosen is None else chosen


def users_with_email_wanted(queryset: QuerySet[User], *, event: str) -> QuerySet[User]:
    """`queryset` annotated with `email_wanted`, computed in the same query (no query per user)."""
    said = NotificationPreference.objects.filter(user=OuterRef("pk"), event=event)
    # Default on: wanted unless they said no. Default off: wanted only if they said yes.
    wanted = ~Exists(said.filter(email=False)) if email_default(event) else Exists(said.filter(email=True))
    return queryset.annotate(email_wanted=ExpressionWrapper(wanted & ~Q(email=""), output_field=BooleanField()))


@transaction.atomic
def notification_create(
    *,
    user: User,
    event: str,
    title: str,
    body: str = "",
    payload: dict[str, Any] | None = None,
    event_id: uuid.UUID | None = None,
) -> Notification:
    """Record a notification for `user`; email it after commit if they want this event by email."""
    wanted = email_wanted(user=user, event=event)
    notification = Notification.objects.create(
        user=user,
        event=event,
        event_id=event_id or uuid.uuid4(),
        title=title[:200],
        body=body,
        payload=payload or {},
        email_state=EmailState.PENDING if wanted else EmailState.NOT_WANTED,
    )
    if wanted:
        task_dispatch(
            name=task_names.SEND_NOTIFICATION_EMAIL,
            queue=queues.NOTIFICATIONS,
            args=[notification.pk],
            owner=user,
            target=notification,
        )
    return notification


def notification_email_render(notification: Notification) -> EmailMessage:
    """The email for a notification, from templates/notifications/email/."""
    context = {"notification": notification, "user": notification.user, "site_name": settings.NOTIFICATIONS_SITE_NAME}
    slug = notification.event.replace(".", "_")
    subject = render_to_string("notifications/email/subject.txt", context)
    body = select_template([f"notifications/email/{slug}.txt", "notifications/email/notification.txt"]).render(context)
    return EmailMessage(
        subject=" ".join(subject.split()),  # a header: one line
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.user.email],
    )


@transaction.atomic
def notification_emails_send(*, notification_ids: list[int]) -> int:
    """Send the pending emails among `notification_ids` through one connection; returns how many.

    The rows stay locked while sending, so a second copy of the task skips them instead of
    sending them again; if the backend fails, nothing is marked sent and the caller retries
    (a message the backend took before failing may then go out twice: email is at least once).
    """
    pending = list(
        Notification.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("user")
        .filter(pk__in=notification_ids, email_state=EmailState.PENDING)
        .order_by("pk")
    )
    if not pending:
        return 0
    messages = [notification_email_render(notification) for notification in pending]
    with get_connection() as connection:
        connection.send_messages(messages)
    Notification.objects.filter(pk__in=[n.pk for n in pending]).update(
        email_state=EmailState.SENT, emailed_at=timezone.now(), email_error=""
    )
    return len(pending)


def notification_email_fail(*, notification_id: int, error: str) -> None:
    """Record that an email could not be sent (after its task's last try)."""
    Notification.objects.filter(pk=notification_id, email_state=EmailState.PENDING).update(
        email_state=EmailState.FAILED, email_error=error
    )
    logger.warning("email for notification %s not sent: %s", notification_id, error)
