"""Where a model name points: a Hub id or a local directory (passed through to transformers), or a name with a
registered prefix that a source resolves to a local directory.

The offline tiny checkpoints (`tiny:<name>`, vlm_recipes.tiny) are such a source. They sit above this layer (their
builders use the collators and the training code), so `models` never imports them: `vlm_recipes.tiny` registers its
resolver here when it is imported, and every entry point imports it (the recipe scripts through vlm_recipes.launch,
the tests through their conftest). A prefixed name whose source was never registered is refused with that fix.

>>> register_source("demo:", lambda name: "/models/" + name.removeprefix("demo:"))
>>> resolve("demo:small"), resolve("org/model")
('/models/small', 'org/model')
>>> unregister_source("demo:")
"""

from __future__ import annotations

from collections.abc import Callable

_SOURCES: dict[str, Callable[[str], str]] = {}
# Prefixes that name a source even before it is registered, and the module that registers it.
KNOWN_PREFIXES = {"tiny:": "vlm_recipes.tiny"}


def register_source(prefix: str, resolver: Callable[[str], str]) -> None:
    """Names starting with `prefix` resolve through `resolver(name) -> local directory`."""
    _SOURCES[prefix] = resolver


def unregister_source(prefix: str) -> None:
    _SOURCES.pop(prefix, None)


def resolve(name_or_path: str) -> str:
    """The local directory of a registered source's name; any other name (Hub id, local path) unchanged."""
    for prefix, resolver in _SOURCES.items():
        if name_or_path.startswith(prefix):
            return str(resolver(name_or_path))
    for prefix, module in KNOWN_PREFIXES.items():
        if name_or_path.startswith(prefix):
            raise ValueError(
                f"{name_or_path!r} is a {prefix} model, built by {module}, which was not imported: `import {module}` "
                "before loading it (the recipe scripts and vlm_recipes.launch do)."
            )
    return name_or_path
