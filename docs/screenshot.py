"""Screenshots of the built documentation site, for a look at how it renders (not part of the tests or CI).

    mkdocs build --strict -d site
    python docs/screenshot.py --site site --out screenshots/

Serves ``--site`` on a local port, opens pages in headless Chromium through Playwright (``pip install playwright``;
the browser is the system's Chromium, ``--chromium``, default ``/usr/bin/chromium``: nothing is downloaded), waits
for MathJax to typeset, and writes one PNG per page. It prints, per page, how many formulas MathJax rendered and
any error the page logged, and exits non-zero if a page logged an error or a page with math rendered none.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
import threading
from pathlib import Path

PAGES = {
    "home": "",
    "model": "model/",
    "api-laws": "api/laws/",
    "cli": "cli/",
    "outputs": "outputs/",
    "contributing": "contributing/",
    "notebook": "notebooks/quickstart_5mix/",
    "benchmarks": "benchmarks/",
}
WITH_MATH = {"model", "api-laws"}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # no line per request
        pass


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=Path("site"), help="the built site (mkdocs build -d SITE)")
    parser.add_argument("--out", type=Path, default=Path("screenshots"), help="folder for the PNGs")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium executable")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1600)
    parser.add_argument("--full-page", action="store_true", help="the whole page, not the first screen")
    parser.add_argument("pages", nargs="*", help=f"pages to take (default: all of {', '.join(PAGES)}); a name or a path under the site")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    server, base = serve(args.site)
    failed = False
    flags = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=flags)
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            for name in args.pages or PAGES:
                errors.clear()
                path = PAGES.get(name, name)
                page.goto(base + path, wait_until="networkidle")
                page.wait_for_timeout(1500)  # MathJax typesets after load
                formulas = page.locator("mjx-container").count()
                shot = args.out / f"{name.strip('/').replace('/', '_') or 'home'}.png"
                page.screenshot(path=str(shot), full_page=args.full_page)
                bad = bool(errors) or (name in WITH_MATH and formulas == 0)
                failed |= bad
                print(f"{'FAIL' if bad else 'ok  '} {path or '/'}: {formulas} formulas rendered; {len(errors)} error(s) -> {shot}")
                for error in errors:
                    print(f"       {error}")
            browser.close()
    finally:
        server.shutdown()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
