"""Notify the web processes' API key caches (users/key_cache.py) of changes to keys, users, tiers.

A key's or user's row that changes in anything but what every request writes (a key's
`last_used_at`, a user's daily counters), or is deleted, notifies channel `users_key_cache`
with the user's id: up to 100 rows a transaction, then `*` once (a statement that moves a
million users to another tier sends 101 notifications, not a million). Any change to tiers,
and emptying a table, notifies `*` (drop every key). Notifications go out when the
transaction commits, never for one rolled back.

The columns compared are named, so that the nightly reset of a million users' counters
compares a few values per row and calls nothing; `users/tests/test_key_cache.py` fails when a
model gains a column the triggers do not name.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION users_key_cache_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    notified integer := coalesce(nullif(current_setting('users.key_cache_notified', true), ''), '0')::integer;
BEGIN
    IF TG_LEVEL = 'STATEMENT' OR notified = 100 THEN
        -- a tier, a whole table, or the 101st row of one transaction: every key
        PERFORM pg_notify('users_key_cache', '*');
    ELSIF notified < 100 AND TG_TABLE_NAME = 'users_apikey' THEN
        PERFORM pg_notify('users_key_cache', OLD.user_id::text);
    ELSIF notified < 100 THEN
        PERFORM pg_notify('users_key_cache', OLD.id::text);
    END IF;
    IF TG_LEVEL = 'ROW' AND notified <= 100 THEN
        PERFORM set_config('users.key_cache_notified', (notified + 1)::text, true);  -- this transaction's
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_apikey_key_cache_update AFTER UPDATE ON users_apikey FOR EACH ROW
    WHEN ((OLD.id, OLD.user_id, OLD.name, OLD.prefix, OLD.key_hash, OLD.created_at, OLD.revoked_at)
          IS DISTINCT FROM (NEW.id, NEW.user_id, NEW.name, NEW.prefix, NEW.key_hash, NEW.created_at, NEW.revoked_at))
    EXECUTE FUNCTION users_key_cache_notify();
CREATE TRIGGER users_apikey_key_cache_delete AFTER DELETE ON users_apikey FOR EACH ROW
    EXECUTE FUNCTION users_key_cache_notify();
CREATE TRIGGER users_apikey_key_cache_truncate AFTER TRUNCATE ON users_apikey
    FOR EACH STATEMENT EXECUTE FUNCTION users_key_cache_notify();

CREATE TRIGGER users_user_key_cache_update AFTER UPDATE ON users_user FOR EACH ROW
    WHEN ((OLD.id, OLD.password, OLD.last_login, OLD.is_superuser, OLD.username, OLD.first_name, OLD.last_name,
           OLD.email, OLD.is_staff, OLD.is_active, OLD.date_joined, OLD.tier_id, OLD.tier_pinned)
          IS DISTINCT FROM (NEW.id, NEW.password, NEW.last_login, NEW.is_superuser, NEW.username, NEW.first_name,
           NEW.last_name, NEW.email, NEW.is_staff, NEW.is_active, NEW.date_joined, NEW.tier_id, NEW.tier_pinned))
    EXECUTE FUNCTION users_key_cache_notify();
CREATE TRIGGER users_user_key_cache_delete AFTER DELETE ON users_user FOR EACH ROW
    EXECUTE FUNCTION users_key_cache_notify();
CREATE TRIGGER users_user_key_cache_truncate AFTER TRUNCATE ON users_user
    FOR EACH STATEMENT EXECUTE FUNCTION users_key_cache_notify();

CREATE TRIGGER users_tier_key_cache AFTER UPDATE OR DELETE OR TRUNCATE ON users_tier
    FOR EACH STATEMENT EXECUTE FUNCTION users_key_cache_notify();
"""

BACKWARD = """
DROP TRIGGER users_apikey_key_cache_update ON users_apikey;
DROP TRIGGER users_apikey_key_cache_delete ON users_apikey;
DROP TRIGGER users_apikey_key_cache_truncate ON users_apikey;
DROP TRIGGER users_user_key_cache_update ON users_user;
DROP TRIGGER users_user_key_cache_delete ON users_user;
DROP TRIGGER users_user_key_cache_truncate ON users_user;
DROP TRIGGER users_tier_key_cache ON users_tier;
DROP FUNCTION users_key_cache_notify();
"""


class Migration(migrations.Migration):
    dependencies = [("users", "0005_usage_date_tier_index")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
