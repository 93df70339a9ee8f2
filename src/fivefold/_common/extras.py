"""Which optional dependencies each tool needs, checked without importing them."""

from __future__ import annotations

import importlib.util

from fivefold._common.errors import MissingExtraError

# Import names (not distribution names) whose absence means the extra is not installed.
REQUIRED_MODULES: dict[str, tuple[str, ...]] = {
    "mail": ("aiosmtplib", "aiosmtpd", "jinja2", "dkim"),
    "crawl": ("aiohttp", "selectolax", "protego"),
    "oops": ("capstone", "elftools"),
    "grad": ("numpy",),
    "video": ("torch", "einops", "numpy"),
}


def missing_module(tool: str) -> str | None:
    """The first required module of ``tool`` that cannot be found, or ``None``."""
    for module in REQUIRED_MODULES.get(tool, ()):
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except (ImportError, ValueError):
            return module
    return None


def require_extra(tool: str) -> None:
    """Raise :class:`MissingExtraError` unless every module ``tool`` needs is importable."""
    module = missing_module(tool)
    if module is not None:
        raise MissingExtraError(tool, module)


def tool_for_module(module: str) -> str | None:
    """The tool whose extra provides ``module`` (``'torch.nn'`` -> ``'video'``)."""
    top = module.split(".")[0]
    for tool, modules in REQUIRED_MODULES.items():
        if top in modules:
            return tool
    return None
