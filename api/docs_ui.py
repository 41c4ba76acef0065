"""The API docs UI at `/schema`: Swagger UI, its scripts and styles served by this app.

No CDN: the browser loads every asset from `/schema-assets/`, the static files of the
`swagger-ui-py` package (Swagger UI's own distribution, Apache-2.0, its LICENSE beside them), so
the page works offline. The favicon is the app's own.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from litestar import Router
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

ASSETS_PATH = "/schema-assets"


def _swagger_ui_dist() -> Path:
    """Swagger UI's files as the `swagger_ui` package installs them (found without importing
    the package, which only wraps other web frameworks)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is missing: reinstall oncoledger")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def docs_ui() -> SwaggerRenderPlugin:
    """Swagger UI at `/schema`, over `/schema/openapi.json`, with local assets."""
    return SwaggerRenderPlugin(
        path="/",
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
    )


def docs_assets() -> Router:
    return create_static_files_router(
        path=ASSETS_PATH, directories=[_swagger_ui_dist()], include_in_schema=False
    )
