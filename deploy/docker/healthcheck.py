"""The image's HEALTHCHECK: exit 0 when the service's /healthz answers 200, else 1.

The slim base images have no curl, and a shell one-liner would hide the port logic in quoting;
this reads the same SENTIMENT_HTTP_PORT the service listens on. Standard library only, so it
starts fast and needs nothing from the venv.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_PORT = "9108"  # consumer.settings.Settings.http_port; a test keeps the two equal


def main() -> int:
    port = os.environ.get("SENTIMENT_HTTP_PORT", DEFAULT_PORT)
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as e:
        print(f"healthcheck: {url}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
