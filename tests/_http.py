"""A tiny HTTP server on 127.0.0.1 for the weights tests: plain files and a fake Hugging Face Hub.

The Hub part answers ``HEAD``/``GET {endpoint}/{repo_id}/resolve/{revision}/{filename}`` with the
headers ``huggingface_hub`` reads (``X-Repo-Commit``, ``ETag``/``X-Linked-Etag`` = the file's sha256,
``X-Linked-Size``), so the library's real download, cache and checksum code runs against it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FileServer:
    """Serves registered byte strings; counts requests per path.

    Args:
        delay: seconds to sleep before each GET body (makes concurrent downloads overlap).
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.files: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.gets: dict[str, int] = {}
        self.delay = delay
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def _head(self) -> bytes | None:
                path = self.path.split("?", 1)[0]
                if path not in server.files:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.end_headers()
                    return None
                body, headers = server.files[path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                return body

            def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
                self._head()

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?", 1)[0]
                server.gets[path] = server.gets.get(path, 0) + 1
                body = self._head()
                if body is not None:
                    time.sleep(server.delay)
                    self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll interval: shutdown() waits for the loop's next poll (0.5 s by default, per test).
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def add(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> str:
        """Serve ``body`` at ``path``; returns its full URL."""
        self.files[path] = (body, headers or {})
        return self.url + path

    def add_hub_file(
        self, repo_id: str, filename: str, body: bytes, *, revision: str = "main", etag: str | None = None
    ) -> None:
        """Serve a Hub LFS file; ``etag`` defaults to the body's sha256 (pass another to fake corruption)."""
        sha = etag or hashlib.sha256(body).hexdigest()
        headers = {
            "X-Repo-Commit": COMMIT,
            "ETag": f'"{sha}"',
            "X-Linked-Etag": f'"{sha}"',
            "X-Linked-Size": str(len(body)),
        }
        self.add(f"/{repo_id}/resolve/{revision}/{filename}", body, headers)
