"""Signals that domain apps listen to, so jobs never imports them."""

from django.dispatch import Signal

# Sent with `record` and `reason` when a record ends without its task having finished the work
# (the sweeper gave up, or it was revoked before it started): the owning app ends its request.
task_record_abandoned = Signal()

# Sent with `record` and `by` (the user who asked) when a record is revoked: the owning app
# marks its request CANCELLED.
task_record_revoked = Signal()
