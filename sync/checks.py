"""System checks for the embedding settings the pgvector column depends on."""

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

HNSW_MAX_DIMENSIONS = 2000  # pgvector's limit for indexing the `vector` type


@register()
def embedding_dimensions_check(app_configs: Any = None, **_: Any) -> list[Error]:
    dimensions = settings.AI_EMBEDDING_DIMENSIONS
    if not 1 <= dimensions <= HNSW_MAX_DIMENSIONS:
        return [
            Error(
                f"AI_EMBEDDING_DIMENSIONS is {dimensions}; it must be between 1 and {HNSW_MAX_DIMENSIONS} "
                "(pgvector's HNSW index limit).",
                id="sync.E001",
            )
        ]
    return []
