"""fivefold: five production-grade tools behind one command line.

Importing this package imports no tool: each tool lives in its own sub-package
(``fivefold.mail``, ``fivefold.crawl``, ``fivefold.oops``, ``fivefold.grad``,
``fivefold.video``) and pulls in its own dependencies only when imported.
"""

__version__ = "0.1.0"

TOOLS: tuple[str, ...] = ("mail", "crawl", "oops", "grad", "video")

__all__ = ["TOOLS", "__version__"]
