"""``python -m lookwhere …`` runs the ``lookwhere`` command (for tools that start it as a process)."""

from lookwhere.cli import main

raise SystemExit(main())
