"""common.urls.url_reverse gives what reverse() gives, and goes through reverse() when it must."""

import uuid

import pytest
from django.http import HttpResponse
from django.urls import NoReverseMatch, path, re_path, reverse, set_script_prefix

from common.urls import url_reverse


def _view(request, **kwargs):  # pragma: no cover - never served
    return HttpResponse()


# The URLconf of the tests marked `urls` below: the kinds of argument patterns there are.
urlpatterns = [
    re_path(r"^router/(?P<pk>[^/.]+)/$", _view, name="router"),  # what DRF's routers write
    path("number/<int:pk>/", _view, name="number"),
    path("slug/<slug:slug>/", _view, name="slug"),
    re_path(r"^lower/(?P<code>[a-z0-9]+)/$", _view, name="lower"),
    # One name, two patterns: reverse() picks by the argument.
    path("by-number/<int:pk>/", _view, name="either"),
    path("by-text/<str:text>/", _view, name="either"),
]

# Another URLconf, for the test that switches ROOT_URLCONF.
other_urlpatterns = [re_path(r"^elsewhere/(?P<pk>[^/.]+)/$", _view, name="router")]

ARGUMENTS = [1, 42, 10**12, uuid.uuid4(), "abc-DEF-123"]


def _same_as_reverse(name, argument):
    """url_reverse gives what reverse gives, or refuses the argument as reverse does."""
    try:
        expected = reverse(name, args=[argument])
    except NoReverseMatch:
        with pytest.raises(NoReverseMatch):
            url_reverse(name, argument)
    else:
        assert url_reverse(name, argument) == expected


@pytest.fixture
def script_prefix():
    yield set_script_prefix
    set_script_prefix("/")


@pytest.mark.parametrize("name", ["api:prompt-detail", "api:task-detail", "api:document-detail", "api:image-file"])
@pytest.mark.parametrize("argument", ARGUMENTS)
def test_the_api_urls_are_what_reverse_gives(name, argument):
    _same_as_reverse(name, argument)


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("name", ["router", "number", "slug", "lower", "either"])
@pytest.mark.parametrize("argument", ARGUMENTS)
def test_every_kind_of_pattern_gives_what_reverse_gives_or_refuses_the_same(name, argument):
    _same_as_reverse(name, argument)


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("argument", ["a b", "a/b", "é", "a.b", "a?b=1", ""])
def test_an_argument_that_is_not_plain_goes_through_reverse(argument):
    _same_as_reverse("router", argument)


def test_the_script_prefix_is_the_one_of_the_moment(script_prefix):
    argument = uuid.uuid4()
    assert url_reverse("api:task-detail", argument) == f"/api/v1/tasks/{argument}/"
    script_prefix("/mounted/here/")
    assert url_reverse("api:task-detail", argument) == f"/mounted/here/api/v1/tasks/{argument}/"
    assert url_reverse("api:task-detail", argument) == reverse("api:task-detail", args=[argument])


def test_a_changed_root_urlconf_is_followed(settings):
    import sys
    import types

    other = types.ModuleType("tests_urls_other")
    other.urlpatterns = other_urlpatterns
    sys.modules["tests_urls_other"] = other
    settings.ROOT_URLCONF = __name__
    assert url_reverse("router", 7) == reverse("router", args=[7]) == "/router/7/"
    settings.ROOT_URLCONF = "tests_urls_other"
    assert url_reverse("router", 7) == reverse("router", args=[7]) == "/elsewhere/7/"
