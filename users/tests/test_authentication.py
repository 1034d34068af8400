"""API keys: the one-query look-up every request makes, and who it refuses."""

from django.utils import timezone
from rest_framework.test import APIClient

from users.authentication import api_key_lookup
from users.models import ApiKey, User
from users.services import api_key_hash


def values(instance):
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


def test_the_lookup_gives_what_the_orm_gives_in_one_query(db, make_user, django_assert_num_queries):
    user = make_user(tier="pro")
    orm = ApiKey.objects.select_related("user", "user__tier").get(key_hash=api_key_hash(user.api_key))

    with django_assert_num_queries(1):
        api_key = api_key_lookup(api_key_hash(user.api_key))
        assert api_key.user.tier.slug == "pro"  # loaded with the key: no query of its own

    assert values(api_key) == values(orm)
    assert values(api_key.user) == values(orm.user)
    assert values(api_key.user.tier) == values(orm.user.tier)
    assert isinstance(api_key.user.tier.allowed_models, list)  # JSON decoded, not text
    assert not api_key._state.adding and api_key.user.pk == user.pk  # usable as loaded rows


def test_a_user_without_a_tier_is_found_and_given_the_default_one(db, make_user):
    user = make_user()
    User.objects.filter(pk=user.pk).update(tier=None)

    assert api_key_lookup(api_key_hash(user.api_key)).user.tier is None
    response = APIClient().post("/api/v1/prompts/", {"prompt_text": "hi"}, format="json", HTTP_X_API_KEY=user.api_key)

    assert response.status_code == 202, response.content
    assert User.objects.get(pk=user.pk).tier.slug == "free"


def test_revoked_keys_and_inactive_users_answer_401(db, make_user):
    revoked, inactive = make_user(), make_user()
    ApiKey.objects.filter(user=revoked).update(revoked_at=timezone.now())
    User.objects.filter(pk=inactive.pk).update(is_active=False)

    for user in (revoked, inactive):
        response = APIClient().get("/api/v1/prompts/", HTTP_AUTHORIZATION=f"Token {user.api_key}")
        assert response.status_code == 401
        assert response.json()["detail"] in {"Invalid API key.", "User inactive or deleted."}
    assert api_key_lookup(api_key_hash(revoked.api_key)) is None
    assert api_key_lookup(api_key_hash("not a key")) is None


def test_using_a_key_notes_when(db, make_user):
    user = make_user()
    assert ApiKey.objects.get(user=user).last_used_at is None

    assert APIClient().get("/api/v1/prompts/", HTTP_X_API_KEY=user.api_key).status_code == 200

    assert ApiKey.objects.get(user=user).last_used_at is not None
