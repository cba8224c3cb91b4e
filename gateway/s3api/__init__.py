"""The S3 front end: the aiohttp application, request authentication, bodies and the
operation handlers.
"""
