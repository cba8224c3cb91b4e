"""The ``minimo`` command line: one module per command group.

Every subcommand acts on the stores of ``--data-dir`` (or ``MINIMO_DATA_DIR``), also while a
server runs on the same directory: SQLite in WAL mode lets both share the file, and running
servers see new keys at once and revocations within 5 s (see :mod:`policy.identity`). With
``--mongo-uri`` (or ``MINIMO_MONGO_URI``) metadata lives in MongoDB instead; the secret key file
stays in the data dir and must be the same for every process using that database.
The CLI files its changes in the audit log as ``cli:<OS user>``.

* :mod:`~gateway.cli.root`: the ``minimo`` group, every command attached; errors as one line.
* The commands: :mod:`~gateway.cli.serve`, :mod:`~gateway.cli.user`, :mod:`~gateway.cli.key`,
  :mod:`~gateway.cli.certs`, :mod:`~gateway.cli.form`, :mod:`~gateway.cli.policy`,
  :mod:`~gateway.cli.session`, :mod:`~gateway.cli.audit`, :mod:`~gateway.cli.reconcile`,
  :mod:`~gateway.cli.adopt`.
* What they share: :mod:`~gateway.cli.options` (the store and ``--s3-*`` options, parsing option
  values), :mod:`~gateway.cli.stores` (opening the stores and running one action on them),
  :mod:`~gateway.cli.output` (instants, sizes and problems as printed).

``python -m gateway.cli`` runs it as the ``minimo`` console script does.
"""

from gateway.cli.root import main

__all__ = ["main"]
