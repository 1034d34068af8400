"""`reverse()` for a URL of one argument, from a template reversed once per URL name.

Every accepted request answers with two such URLs (`status_url`, `task_url`), and a list with
two per row. Django's `reverse()` looks the name up and checks the arguments against the
pattern on every call (about 40 µs each); this reverses the name once with a stand-in
argument, and then only puts the real one in its place.

The template is used for an argument made of letters, digits and hyphens (ids, UUIDs) when
the URL's pattern takes the stand-in, which has all of those (DRF routers' `[^/.]+` does);
anything else goes through `reverse()` itself. Keyed on the script prefix and URLconf, as
`reverse()` is. `tests/test_urls.py` checks both give the same URLs.
"""

import re
from functools import lru_cache
from typing import Any

from django.urls import NoReverseMatch, get_script_prefix, get_urlconf, reverse

_STAND_IN = "Zz09-Aa"
_PLAIN = re.compile(r"[A-Za-z0-9-]+\Z")


@lru_cache(maxsize=256)
def _template(name: str, prefix: str, urlconf: str | None) -> str | None:
    """The path of `name` with `_STAND_IN` for its argument, or None if its pattern refuses it."""
    try:
        path = reverse(name, args=[_STAND_IN], urlconf=urlconf)
    except NoReverseMatch:
        return None
    return path if path.count(_STAND_IN) == 1 else None


def url_reverse(name: str, arg: Any) -> str:
    """`reverse(name, args=[arg])`, without its cost for ids and UUIDs."""
    text = str(arg)
    template = _template(name, get_script_prefix(), get_urlconf())
    if template is None or not _PLAIN.match(text):
        return reverse(name, args=[arg])
    return template.replace(_STAND_IN, text)
