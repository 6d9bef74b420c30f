"""Headless Chromium driven over the DevTools protocol on a pipe: no Python dependency, no network port.

`chromium --remote-debugging-pipe` reads protocol messages (JSON, each ended
by a NUL byte) from its file descriptor 3 and writes replies and events to
descriptor 4. That is all a test needs to open a page from disk, ask what its
<img> and <video> elements loaded, collect console errors and take a
screenshot; a websocket client or Selenium would add a dependency for the same.

    python tests/browser.py REPORT/index.html shot.png [WIDTH HEIGHT]

writes a screenshot of a page (how `docs/report.png` was made).
"""

from __future__ import annotations

import base64
import fcntl
import json
import math
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["Browser", "find_chromium", "PAGE_MEDIA"]

# Resolves to {"images": [[src, naturalWidth], …], "videos": [[src, videoWidth, error], …]} once every video
# has its first frame (loadeddata) or failed; a video that does neither in 20 s reports width 0.
PAGE_MEDIA = """
(async () => {
  const images = [...document.images];
  await Promise.all(images.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  const videos = [...document.querySelectorAll('video')];
  await Promise.all(videos.map(v => v.readyState >= 2 ? null : new Promise(r => {
    v.addEventListener('loadeddata', r); v.addEventListener('error', r); setTimeout(r, 20000);
    v.preload = 'auto'; v.load();
  })));
  return {images: images.map(i => [i.getAttribute('src'), i.naturalWidth]),
          videos: videos.map(v => [v.getAttribute('src'), v.videoWidth,
                                   v.error ? v.error.message || String(v.error.code) : null])};
})()
"""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


class Browser:
    """One headless Chromium process and one page in it; `close()` (or `with`) ends the process."""

    def __init__(self, executable: str, width: int = 1200, height: int = 900) -> None:
        self._profile = tempfile.mkdtemp(prefix="sefa-chromium-")
        to_browser_read, to_browser_write = os.pipe()
        from_browser_read, from_browser_write = os.pipe()
        # Copies at ≥ 10 so the child's dup2 onto 3 and 4 cannot overwrite one pipe end with the other.
        child_in, child_out = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser_read, from_browser_write))

        def descriptors_3_and_4() -> None:
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        arguments = [executable, "--headless", "--remote-debugging-pipe", f"--user-data-dir={self._profile}",
                     "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
                     "--mute-audio", "--hide-scrollbars", f"--window-size={width},{height}", "about:blank"]
        if os.geteuid() == 0:
            arguments.insert(1, "--no-sandbox")  # Chromium refuses to run its sandbox as root
        self._process = subprocess.Popen(arguments, pass_fds=(3, 4), preexec_fn=descriptors_3_and_4,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        for fd in (to_browser_read, from_browser_write, child_in, child_out):
            os.close(fd)
        self._write = os.fdopen(to_browser_write, "wb", buffering=0)
        self._read = os.fdopen(from_browser_read, "rb", buffering=0)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.width, self.height = width, height
        try:
            target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self._session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.call(f"{domain}.enable")
            self._set_viewport(height)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
        """A protocol command on the page; returns its result, raises on a protocol error."""
        return self._call(method, params, timeout, self._session)

    def open(self, path: Path, timeout: float = 30) -> None:
        """Navigate to a file on disk and wait for its load event (all images fetched)."""
        self.events.clear()
        self.call("Page.navigate", {"url": path.resolve().as_uri()})
        self._wait_event("Page.loadEventFired", timeout)  # it may have come in while waiting for navigate's reply

    def evaluate(self, expression: str, timeout: float = 60) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True}, timeout)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def console_errors(self) -> list[str]:
        """Errors the page logged since `open`: console.error, uncaught exceptions, failed loads."""
        errors = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
            elif event["method"] == "Runtime.exceptionThrown":
                errors.append(params["exceptionDetails"].get("text", "exception"))
            elif event["method"] == "Log.entryAdded" and params["entry"].get("level") == "error":
                errors.append(f"{params['entry'].get('text')} {params['entry'].get('url', '')}")
        return errors

    def screenshot(self, full_page: bool = True) -> bytes:
        """PNG bytes of the viewport, or of the whole page when `full_page`.

        The whole page is shot by growing the viewport to the page's height:
        `captureBeyondViewport` would leave <video> frames unpainted.
        """
        if not full_page:
            return base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"])
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        self._set_viewport(math.ceil(size["height"]))
        self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")  # repainted
        try:
            return base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"])
        finally:
            self._set_viewport(self.height)

    def _set_viewport(self, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                self._call("Browser.close", timeout=5)
            except (OSError, RuntimeError, TimeoutError):
                pass
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._write.close()
        self._read.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def _call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30,
              session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._write.write(json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline, method)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            if "method" in reply:
                self.events.append(reply)

    def _wait_event(self, method: str, timeout: float) -> dict[str, Any]:
        """The first `method` event since `open` cleared the list, waiting for it if it has not come yet."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event["method"] == method:
                    return event
            seen = len(self.events)
            message = self._receive(deadline, method)
            if "method" in message:
                self.events.append(message)

    def _receive(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        """The next NUL-terminated message from the browser."""
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"Chromium did not answer {waiting_for} in time")
            ready, _, _ = select.select([self._read], [], [], remaining)
            if ready:
                chunk = self._read.read(1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the pipe while answering {waiting_for}")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)


if __name__ == "__main__":
    page, shot = Path(sys.argv[1]), Path(sys.argv[2])
    size = (int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 4 else (1200, 900)
    executable = find_chromium()
    if executable is None:
        sys.exit("chromium not found")
    with Browser(executable, *size) as browser:
        browser.open(page)
        print(json.dumps(browser.evaluate(PAGE_MEDIA)))
        print("\n".join(browser.console_errors()) or "no console errors")
        shot.write_bytes(browser.screenshot(full_page=False))
