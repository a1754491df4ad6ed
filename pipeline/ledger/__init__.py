"""The ledger: an append-only record of every writing command, and a small document store.

Two backends. The default is a JSON-lines file (``.tierup/ledger.jsonl``) on the machine that
runs tierup. A team sets ``ledger: {s3: s3://bucket/prefix}``: CI runners are ephemeral, so
the record lives in S3, one object per event under a time-sortable key, written with
``IfNoneMatch: "*"`` so that no writer ever replaces another's event.

The same backend keeps documents (snapshots) and the per-tier locks (``pipeline.lock``),
through the ``Store`` each ledger exposes.

Modules: ``times`` (event ids and the time format), ``identity`` (who acts, from where),
``store`` (the store protocol and the file store), ``s3_store`` (the S3 store), ``base`` (the
ledger: recording, reading and folding events, documents), ``local`` and ``s3`` (the two
backends), ``configured`` (the ledger envs.yaml configures).
"""
