"""``python -m modelmix_lite``: see :mod:`modelmix_lite.cli`."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
