"""The Faust rules app (``preempt-rules``), HTTP ingest, the publisher SDK and the ``preempt`` CLI."""
