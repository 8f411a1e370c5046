"""``swiftune deploy``'s server: an OpenAI-compatible HTTP API over one base model and many adapters.

``protocol`` is the wire format, ``engine`` the queue and batched generation, ``rows`` the per-row
hooks inside one ``generate`` call, ``app`` the FastAPI application. FastAPI and uvicorn come with
the ``deploy`` extra (``pip install 'swiftune[deploy]'``).
"""
