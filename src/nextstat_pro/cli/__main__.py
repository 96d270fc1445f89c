"""``python -m nextstat_pro.cli``: the same entry point as the ``nextstat-pro`` script."""

from .main import main

main()
