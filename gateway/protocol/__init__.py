"""The S3 wire vocabulary shared by the front end and the object backends: the error
table, signatures, aws-chunked framing, conditions, ranges, names, checksums, XML, and the
headers that keep stored bytes from running script on the UI's origin (safe_serving).
It imports nothing else from the gateway and nothing from policy or ui.
"""
