"""Evaluation sections (one module per metric family); importing this package registers the built-ins."""

from probssl.evaluation.sections import (  # noqa: F401  (registration on import)
    ambiguity,
    compression,
    content_style,
    fine_tuning,
    geometry,
    information,
    probes,
    quantized,
    retrieval,
    style_at_dim,
    uncertainty,
    visual,
)
from probssl.evaluation.sections.base import (
    EvalContext,
    Section,
    get_section,
    list_sections,
    register_section,
    skip_names,
    unregister_section,
)

__all__ = [
    "EvalContext",
    "Section",
    "get_section",
    "list_sections",
    "register_section",
    "skip_names",
    "unregister_section",
]
