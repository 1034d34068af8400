"""Email through Django's backend (locmem here, to read what was sent), with per-event opt-out."""

from django.core import mail

from notifications.models import Notification
from notifications.services import (
    email_preferences_set,
    notification_create,
    notification_emails_send,
    notification_event_emit,
)


def with_email(user):
    user.email = f"{user.username}@example.com"
    user.save()
    return user


def test_a_notification_is_emailed_once_from_the_templates(make_user):
    user = with_email(make_user())
    notification = notification_create(user=user, event="system", title="Maintenance tonight", body="From 22:00.")

    sent = notification_emails_send(notification_ids=[notification.pk])
    again = notification_emails_send(notification_ids=[notification.pk])

    assert (sent, again) == (1, 0)
    [message] = mail.outbox
    assert message.to == [user.email]
    assert message.subject == "[AI tasks] Maintenance tonight"
    assert "From 22:00." in message.body and '{"email": {"system": false}}' in message.body
    notification.refresh_from_db()
    assert notification.email_state == "SENT" and notification.emailed_at is not None


def test_an_event_the_user_opted_out_of_is_not_emailed(make_user):
    user = with_email(make_user())
    email_preferences_set(user=user, preferences={"system": False})

    notification = notification_create(user=user, event="system", title="Maintenance")

    assert notification.email_state == "NOT_WANTED"
    assert notification_emails_send(notification_ids=[notification.pk]) == 0
    assert mail.outbox == []


def test_emitted_events_are_emailed_only_to_users_who_opted_in(make_user):
    user = with_email(make_user())

    notification_event_emit(user=user, event="prompt.completed", payload={"prompt_id": 3})
    assert not Notification.objects.exists()  # prompt.completed is not emailed by default

    email_preferences_set(user=user, preferences={"prompt.completed": True})
    notification_event_emit(user=user, event="prompt.completed", payload={"prompt_id": 4, "text": "<b>hi</b>"})
    notification = Notification.objects.get()
    notification_emails_send(notification_ids=[notification.pk])

    assert notification.title == "Your prompt is done"
    [message] = mail.outbox
    assert "prompt_id: 4" in message.body and "text: <b>hi</b>" in message.body  # plain text, not escaped


def test_a_user_without_an_address_gets_no_email(make_user):
    notification = notification_create(user=make_user(), event="system", title="Hello")

    assert notification.email_state == "NOT_WANTED"
