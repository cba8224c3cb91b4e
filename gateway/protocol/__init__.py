"""The S3 wire vocabulary shared by the front end and the object backends: the error
table, signatures, aws-chunked framing, conditions, ranges, names, checksums and XML.
It imports nothing else from the gateway and nothing from policy or ui.
"""
