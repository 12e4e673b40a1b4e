"""Pages for people: the customer page (`/app/`, from `web/`), the complaints service page
(`/app/service`, for the operator and auditors), the API docs (`/docs`, `/redoc`) and `/`,
which leads to the customer page.

Every script, style sheet and icon these pages load is served by the gateway itself, from the
npm packages pinned in package.json (`node_modules/`, installed by `make` with `npm ci`): a
gateway on a machine without internet, or a customer who does not want a CDN to learn that they
look at their bill, gets the same pages. Only each package's distribution folder is mounted, not
`node_modules/` as a whole. The pages are not API routes: they are left out of the OpenAPI
schema and need no role (what they show comes from the API routes, with the caller's token).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WEB_DIR = PROJECT_ROOT / "web"
NODE_MODULES = PROJECT_ROOT / "node_modules"

ASSETS_PREFIX = "/assets"
ASSET_DIRS: dict[str, Path] = {
    "swagger-ui": NODE_MODULES / "swagger-ui-dist",
    "redoc": NODE_MODULES / "redoc" / "bundles",
    "chart.js": NODE_MODULES / "chart.js" / "dist",
    "ethers": NODE_MODULES / "ethers" / "dist",
}
"""URL folder under /assets -> the npm package folder it serves."""

FAVICON_URL = "/app/favicon.svg"

DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:"
)
"""The docs pages may load from the gateway only. ReDoc's sidebar shows a logo from
cdn.redoc.ly that no option turns off: the browser refuses that request instead of making it.
(Swagger UI's set-up script is inline, hence 'unsafe-inline'.)"""

router = APIRouter(include_in_schema=False)


@router.get("/")
def root() -> RedirectResponse:
    """A person opening the gateway's address lands on the customer page (307: not cached,
    so a later release may lead elsewhere)."""
    return RedirectResponse("/app/")


@router.get("/app")
def app_without_slash() -> RedirectResponse:
    """The page's relative links need the trailing slash."""
    return RedirectResponse("/app/")


@router.get("/app/service")
def service_page() -> RedirectResponse:
    """The complaints service page (the operator's queue and the auditors' statistics)."""
    return RedirectResponse("/app/service.html")


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    """Swagger UI over /openapi.json, with its script and styles from the gateway."""
    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Energy ledger gateway - Swagger UI",
        swagger_js_url=f"{ASSETS_PREFIX}/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_PREFIX}/swagger-ui/swagger-ui.css",
        swagger_favicon_url=FAVICON_URL,
    )
    page.headers["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
    return page


@router.get("/redoc")
def redoc() -> HTMLResponse:
    """ReDoc over /openapi.json, from the gateway, with the system's fonts (no Google Fonts)."""
    page = get_redoc_html(
        openapi_url="/openapi.json",
        title="Energy ledger gateway - ReDoc",
        redoc_js_url=f"{ASSETS_PREFIX}/redoc/redoc.standalone.js",
        redoc_favicon_url=FAVICON_URL,
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
    return page


def install_pages(app: FastAPI) -> None:
    """Adds the pages and mounts their static files. A folder that is missing (node_modules
    not installed) answers 404 for its files instead of stopping the gateway."""
    app.include_router(router)
    for name, directory in ASSET_DIRS.items():
        app.mount(
            f"{ASSETS_PREFIX}/{name}",
            StaticFiles(directory=directory, check_dir=False),
            name=f"assets-{name}",
        )
    app.mount("/app", StaticFiles(directory=WEB_DIR, html=True, check_dir=False), name="app")
