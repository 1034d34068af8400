"""Django's PostgreSQL backend with a cheaper and faster-recovering pool check (see base.py)."""
