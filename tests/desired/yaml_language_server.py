"""A minimal LSP client for yaml-language-server (npm), spoken over stdio JSON-RPC: what an editor
does, so the tests see the diagnostics and completions a person sees."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from pathlib import Path
from typing import Any

from tests.real_tools import node_package, program

TIMEOUT = 60.0


class YamlLanguageServer:
    def __init__(self, root: Path) -> None:
        server = node_package("yaml-language-server/bin/yaml-language-server")
        node = program("node", "apt-get install nodejs")
        self._proc = subprocess.Popen(
            [node, str(server), "--stdio"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._next_id = 0
        self._responses: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._diagnostics: queue.Queue[dict[str, Any]] = queue.Queue()
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        self.request(
            "initialize",
            {
                "processId": None,
                "rootUri": root.as_uri(),
                "capabilities": {
                    "textDocument": {
                        "completion": {"completionItem": {"snippetSupport": True}},
                        "publishDiagnostics": {},
                    },
                    "workspace": {"configuration": True},
                },
            },
        )
        self.notify("initialized", {})
        self.notify("workspace/didChangeConfiguration", {"settings": self.settings()})

    @staticmethod
    def settings() -> dict[str, Any]:
        return {"yaml": {"validate": True, "completion": True, "hover": False, "schemas": {}}}

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self._proc.stdin is not None
        with self._lock:
            self._proc.stdin.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            self._proc.stdin.flush()

    def _read(self) -> None:
        out = self._proc.stdout
        assert out is not None
        while True:
            length = 0
            while True:
                line = out.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            message = json.loads(out.read(length))
            if "id" in message and "method" in message:  # a request from the server
                result: Any = None
                if message["method"] == "workspace/configuration":
                    items = message["params"]["items"]
                    result = [self.settings()["yaml"] for _ in items]
                self._send({"id": message["id"], "result": result})
            elif "id" in message:
                self._responses[message["id"]].put(message)
            elif message.get("method") == "textDocument/publishDiagnostics":
                self._diagnostics.put(message["params"])

    def request(self, method: str, params: dict[str, Any]) -> Any:
        self._next_id += 1
        box: queue.Queue[dict[str, Any]] = queue.Queue()
        self._responses[self._next_id] = box
        self._send({"id": self._next_id, "method": method, "params": params})
        reply = box.get(timeout=TIMEOUT)
        assert "error" not in reply, reply
        return reply.get("result")

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self._send({"method": method, "params": params})

    def open(self, path: Path, text: str | None = None) -> str:
        uri = path.as_uri()
        text = path.read_text(encoding="utf-8") if text is None else text
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}},
        )
        return uri

    def diagnostics(self, uri: str) -> list[dict[str, Any]]:
        """The first diagnostics published for `uri` (the server validates once per change)."""
        while True:
            params = self._diagnostics.get(timeout=TIMEOUT)
            if params["uri"] == uri:
                return list(params["diagnostics"])

    def completion(self, uri: str, line: int, character: int) -> list[dict[str, Any]]:
        result = self.request(
            "textDocument/completion",
            {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}},
        )
        items = result["items"] if isinstance(result, dict) else result
        return list(items or [])

    def close(self) -> None:
        try:
            self.request("shutdown", {})
            self.notify("exit", {})
            self._proc.wait(timeout=10)
        finally:
            if self._proc.poll() is None:
                self._proc.kill()
