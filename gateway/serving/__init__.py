"""The OpenAI-compatible server: routes, auth, request log and metrics.

Needs the `serve` extra (starlette, uvicorn). `gateway serve` runs
`gateway.serving.app.create_app(config)` under uvicorn.
"""
