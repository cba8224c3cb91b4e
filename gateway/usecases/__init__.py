"""Use cases that span both stores (the object store and the metadata store): the write
protocol and its rollback, crash recovery, reconcile, adopt and the session crate. The one
place that talks to both; the S3 front end, the CLI and the UI call in here.
"""
