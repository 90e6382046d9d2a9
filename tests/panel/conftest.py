"""The admin panel under a real uvicorn server on 127.0.0.1, driven by chromium."""
