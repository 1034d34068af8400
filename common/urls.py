"""`reverse()` for a URL of one argument, from a template reversed once per URL name.

Every accepted request answers with two such URLs (`status_url`, `task_url`), and a list with
two per row. Django's `reverse()` looks the name up and checks the arguments against the
pattern on every call (about 40 µs each); this reverses the name once with a stand-in
argument, and then only puts the real one in its place.

Arguments are of two kinds, digits (ids) and other letters, digits and hyphens (UUIDs, slugs),
each with its own stand-in and template, so that a name with several patterns gives the one
`reverse()` picks for that kind. A template is used only if it gives what `reverse()` gives for
a second argument of its kind; for anything else (other characters, a pattern that refuses the
stand-in) `reverse()` itself is called. Keyed on the script prefix and URLconf, as `reverse()`
is. `tests/test_urls.py` checks both give the same URLs.
"""

import re
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.urls import NoReverseMatch, get_script_prefix, get_urlconf, reverse

_STAND_INS = {"digits": ("90817263", "12345678"), "plain": ("Zz09-Aa", "yY18-bB")}
_PLAIN = re.compile(r"[A-Za-z0-9-]+\Z")


@lru_cache(maxsize=256)
def _template(name: str, kind: str, prefix: str, urlconf: str | None) -> str | None:
    """The path of `name` with the stand-in of `kind` for its argument, or None if unusable."""
    stand_in, probe = _STAND_INS[kind]
    try:
        path = reverse(name, args=[stand_in], urlconf=urlconf)
        if path.count(stand_in) != 1 or path.replace(stand_in, probe) != reverse(name, args=[probe], urlconf=urlconf):
            return None
    except NoReverseMatch:
        return None
    return path


def url_reverse(name: str, arg: Any) -> str:
    """`reverse(name, args=[arg])`, without its cost for ids and UUIDs."""
    text = str(arg)
    if not _PLAIN.match(text):
        return reverse(name, args=[arg])
    kind = "digits" if text.isdigit() else "plain"
    template = _template(name, kind, get_script_prefix(), get_urlconf() or settings.ROOT_URLCONF)
    if template is None:
        return reverse(name, args=[arg])
    return template.replace(_STAND_INS[kind][0], text)
