"""The S3 front end: the aiohttp application, request authentication, bodies, the
operation handlers and how object answers are made safe to serve.
"""
