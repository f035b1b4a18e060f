"""A local HTTP server that stands in for the Hugging Face Hub's write API (huggingface_hub honours HF_ENDPOINT).

It implements what `HfApi.create_repo` and `HfApi.create_commit` call, answers that every file is a regular (non-LFS)
upload so that contents arrive inline, and records everything: created repositories with their visibility, every
commit with its files' bytes, the Authorization headers, and any request it does not know.
"""

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeHub:
    def __init__(self):
        self.repos: dict[str, dict] = {}
        self.commits: list[dict] = []
        self.auth_headers: list[str | None] = []
        self.unknown: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status: int, payload: dict):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hub.auth_headers.append(self.headers.get("Authorization"))
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts == ["api", "repos", "create"]:
                    request = json.loads(data)
                    repo_id = f"{request['organization']}/{request['name']}"
                    url = f"{hub.url}/{repo_id}"
                    if repo_id in hub.repos:
                        return self._reply(409, {"error": "You already created this model repo", "url": url})
                    hub.repos[repo_id] = {"visibility": request.get("visibility"), "request": request}
                    return self._reply(200, {"url": url, "name": repo_id})
                if parts == ["api", "validate-yaml"]:
                    return self._reply(200, {})
                if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "preupload":
                    files = json.loads(data)["files"]
                    modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
                    return self._reply(200, {"files": modes})
                if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "commit":
                    repo_id = f"{parts[2]}/{parts[3]}"
                    if repo_id not in hub.repos:
                        return self._reply(404, {"error": f"Repository {repo_id} not found"})
                    lines = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
                    header = next(x["value"] for x in lines if x["key"] == "header")
                    files = {
                        x["value"]["path"]: base64.b64decode(x["value"]["content"])
                        for x in lines
                        if x["key"] == "file"
                    }
                    lfs = [x["value"]["path"] for x in lines if x["key"] == "lfsFile"]
                    oid = hashlib.sha1(data).hexdigest()
                    hub.commits.append({"repo": repo_id, "summary": header["summary"], "files": files, "lfs": lfs})
                    return self._reply(200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{oid}", "commitOid": oid})
                hub.unknown.append(f"POST {self.path}")
                return self._reply(404, {"error": "not implemented by the stand-in"})

            def do_GET(self):
                if self.path.startswith("/api/agent-harnesses"):  # huggingface_hub's user-agent registry, optional
                    return self._reply(404, {"error": "not served by the stand-in"})
                hub.unknown.append(f"GET {self.path}")
                return self._reply(404, {"error": "not implemented by the stand-in"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
