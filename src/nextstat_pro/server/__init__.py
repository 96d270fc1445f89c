"""NS-Server: the HTTP API over the service layer (FastAPI under uvicorn).

Every route adapts one service operation: it turns the request into the operation's arguments,
takes the caller's ``RequestContext`` from a bearer token or a browser session (``auth``), and
sends the operation's view model back. Errors are RFC 9457 problem documents (``problems``)
with the same codes as the CLI's exit codes: one mapping, ``errors.NSPError``.
"""
