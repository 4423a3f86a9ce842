"""A tiny local stand-in for the Hugging Face Hub's HTTP API, for push tests (no hub is reachable here).

It answers the endpoints that the real ``huggingface_hub`` client calls to create a repository and
commit files (``/api/repos/create``, ``/api/models/<repo>/preupload/<rev>``,
``/api/models/<repo>/commit/<rev>``, ``/api/validate-yaml`` for the model card), asks for every
file as a regular (inline, base64) upload, and keeps what was committed. Other POSTs are recorded
in ``unknown``; GET/HEAD requests (telemetry, optional lookups) get a 404, which the client
tolerates, and are recorded in ``lookups``. Point ``HF_ENDPOINT`` at :attr:`FakeHub.url` in the
uploading process.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeHub:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []  # create-repo payloads, with the Authorization header
        self.commits: list[dict[str, Any]] = []  # {"repo", "revision", "message", "files": {path: bytes}}
        self.unknown: list[str] = []  # POSTs this stand-in does not answer
        self.lookups: list[str] = []  # GET/HEAD requests, answered 404
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _json(self, data: Any, status: int = 200) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                path, body = self.path.split("?")[0], self._body()
                if path == "/api/repos/create":
                    payload = json.loads(body)
                    repo = "/".join(p for p in (payload.get("organization"), payload["name"]) if p)
                    with hub.lock:
                        hub.created.append({**payload, "authorization": self.headers.get("Authorization")})
                    return self._json({"url": f"{hub.url}/{repo}", "name": repo})
                if path == "/api/validate-yaml":  # the model card's metadata
                    return self._json({"errors": [], "warnings": []})
                parts = path.strip("/").split("/")  # api models <org> <name> <action> <revision>
                if len(parts) >= 6 and parts[:2] == ["api", "models"]:
                    repo, action, revision = "/".join(parts[2:4]), parts[4], "/".join(parts[5:])
                    if action == "preupload":
                        files = json.loads(body)["files"]
                        return self._json(
                            {
                                "files": [
                                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                    for f in files
                                ]
                            }
                        )
                    if action == "commit":
                        return self._commit(repo, revision, body)
                with hub.lock:
                    hub.unknown.append(f"POST {self.path}")
                self._json({"error": "not handled by the test hub"}, 404)

            def _commit(self, repo: str, revision: str, body: bytes) -> None:
                commit: dict[str, Any] = {"repo": repo, "revision": revision, "files": {}}
                for line in body.splitlines():
                    item = json.loads(line)
                    if item["key"] == "header":
                        commit["message"] = item["value"].get("summary")
                    elif item["key"] == "file":
                        value = item["value"]
                        commit["files"][value["path"]] = base64.b64decode(value["content"])
                    else:
                        commit.setdefault("other", []).append(item["key"])
                with hub.lock:
                    hub.commits.append(commit)
                    n = len(hub.commits)
                self._json(
                    {
                        "commitUrl": f"{hub.url}/{repo}/commit/{n:040x}",
                        "commitOid": f"{n:040x}",
                        "success": True,
                    }
                )

            def do_GET(self) -> None:  # noqa: N802
                with hub.lock:
                    hub.lookups.append(f"{self.command} {self.path}")
                self._json({"error": "not handled by the test hub"}, 404)

            do_HEAD = do_GET  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def files(self, repo: str) -> dict[str, bytes]:
        """The repository's files after every commit so far."""
        merged: dict[str, bytes] = {}
        for commit in self.commits:
            if commit["repo"] == repo:
                merged.update(commit["files"])
        return merged
