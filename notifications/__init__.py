"""Notifications: users' signed webhooks, email, system notifications and hourly statistics."""
