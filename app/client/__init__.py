"""The platform's Python client: `Client(url).login(username, password)`, or `Client(url, token=...)`.

The package never imports the server's code, so a script needs only httpx (and urllib3 for direct uploads).
"""

from app.client.http import ApiError
from app.client.sdk import Client

__all__ = ["ApiError", "Client"]
