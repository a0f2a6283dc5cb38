"""Generate the API client's models of the ledger's formats from the server's OpenAPI.

The receipt, the audit bundle and the settlement contract's state, history and transactions are formats of
the ledger (``secureflow.ledger``): the server declares its OpenAPI with the ledger's own pydantic models,
which the client may not import (it depends on httpx and pydantic only). So the client's classes for them,
``secureflow.api.client.formats`` (``api/client/formats.py``), are generated from the OpenAPI's component
schemas, not written by hand: ``tests/api/test_client.py`` regenerates them from the live app's OpenAPI and
fails when the file differs.

    .venv/bin/python -m tools.client_formats          # rewrite api/client/formats.py
    .venv/bin/python -m tools.client_formats --check  # exit 1 if it is not what the OpenAPI gives
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "api" / "client" / "formats.py"

ROOTS = (
    "Receipt",
    "AuditBundle",
    "SettlementOut",
    "SettlementHistory",
    "PreparedTransaction",
    "SubmittedTransaction",
)
"""The component schemas of the answers the client types this way (with every schema they refer to)."""

HEADER = '''"""The ledger's formats as the API answers them: receipts, audit bundles, settlement state,
history and transactions (pydantic v2).

GENERATED from the server's OpenAPI by ``tools/client_formats.py``; do not edit (run
``.venv/bin/python -m tools.client_formats`` after changing the ledger's models; a test fails until then).
The server declares these answers with the ledger's own models (``secureflow.ledger.receipts``,
``secureflow.ledger.settlement``), which the client does not import. Fields a newer server adds are kept
(``extra="allow"``), and a model is sent back exactly as it was received (`Format`): a `Receipt` handed to
``verification.verify`` is the receipt the API issued.
"""

from __future__ import annotations

{imports}


class Format(BaseModel):
    """A format of the ledger as received from the API (sent back with only the fields it had)."""

    model_config = ConfigDict(frozen=True, extra="allow")
'''


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _refs(schema: Any) -> set[str]:
    if isinstance(schema, dict):
        found = {_ref_name(schema["$ref"])} if "$ref" in schema else set()
        for value in schema.values():
            found |= _refs(value)
        return found
    if isinstance(schema, list):
        return set().union(*(_refs(item) for item in schema)) if schema else set()
    return set()


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return _ref_name(schema["$ref"])
    if "anyOf" in schema:
        options = [_type(option) for option in schema["anyOf"]]
        return " | ".join(dict.fromkeys(o for o in options if o != "None")) + (
            " | None" if "None" in options else ""
        )
    if "const" in schema:
        return f"Literal[{schema['const']!r}]"
    if "enum" in schema:
        return f"Literal[{', '.join(repr(v) for v in schema['enum'])}]"
    kind = schema.get("type")
    if kind == "null":
        return "None"
    if kind == "string":
        return "datetime" if schema.get("format") == "date-time" else "str"
    if kind in ("integer", "number", "boolean"):
        return {"integer": "int", "number": "float", "boolean": "bool"}[kind]
    if kind == "array":
        return f"list[{_type(schema.get('items', {}))}]"
    if kind == "object" and "properties" not in schema:
        return "dict[str, Any]"
    if not schema:
        return "Any"
    raise ValueError(f"no Python type for the schema {schema!r}: extend tools/client_formats.py")


def _field(name: str, schema: dict[str, Any], required: bool) -> str:
    if not name.isidentifier():
        raise ValueError(f"the property {name!r} is not a Python name: extend tools/client_formats.py")
    kind = _type(schema)
    options: list[str] = []
    if not required:
        if "default" in schema:
            options.append(f"default={schema['default']!r}")
        elif schema.get("type") == "array":
            options.append("default_factory=list")
        elif schema.get("type") == "object":
            options.append("default_factory=dict")
        else:
            kind = kind if kind.endswith("| None") else f"{kind} | None"
            options.append("default=None")
    if schema.get("description"):
        options.append(f"description={schema['description']!r}")
    if not options:
        return f"    {name}: {kind}"
    if options == ["default=None"]:
        return f"    {name}: {kind} = None"
    return f"    {name}: {kind} = Field({', '.join(options)})"


def _class(name: str, schema: dict[str, Any]) -> str:
    if schema.get("type") != "object" or "properties" not in schema:
        raise ValueError(f"{name} is not an object schema with properties")
    lines = [f"class {name}(Format):"]
    if schema.get("description"):
        lines.append(f"    {_docstring(schema['description'])}")
        lines.append("")
    required = set(schema.get("required", ()))
    lines += [_field(prop, sub, prop in required) for prop, sub in schema["properties"].items()]
    return "\n".join(lines)


def _docstring(text: str) -> str:
    return '"""' + text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"') + '"""'


def render(openapi: dict[str, Any]) -> str:
    """The module's source (ruff-formatted) for the component schemas of ``openapi``."""
    components: dict[str, Any] = openapi["components"]["schemas"]
    wanted: list[str] = []
    todo = list(ROOTS)
    while todo:
        name = todo.pop(0)
        if name not in wanted:
            wanted.append(name)
            todo += sorted(_refs(components[name]))
    ordered: list[str] = []  # every class after the classes its fields name

    def visit(name: str) -> None:
        if name not in ordered:
            for dependency in sorted(_refs(components[name]) - {name}):
                visit(dependency)
            ordered.append(name)

    for name in wanted:
        visit(name)
    body = "\n\n\n".join(_class(name, components[name]) for name in ordered)
    source = f"{HEADER}\n\n{body}\n\n\n__all__ = {sorted(['Format', *ordered])!r}\n"
    source = source.replace("{imports}", _imports(body))
    return _ruff_format(source)


def _imports(body: str) -> str:
    """The import lines the classes need (ruff refuses unused ones)."""

    def used(name: str) -> bool:
        return re.search(rf"\b{name}\b", body) is not None

    lines = ["from datetime import datetime"] if used("datetime") else []
    typing = [name for name in ("Any", "Literal") if used(name)]
    if typing:
        lines.append(f"from typing import {', '.join(typing)}")
    pydantic = ["BaseModel", "ConfigDict", *(["Field"] if used("Field") else [])]
    return "\n".join(lines) + ("\n\n" if lines else "") + f"from pydantic import {', '.join(pydantic)}"


def _ruff_format(source: str) -> str:
    ruff = Path(sys.executable).with_name("ruff")
    done = subprocess.run(
        [str(ruff), "format", "--stdin-filename", str(TARGET.relative_to(ROOT)), "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ruff format failed on the generated module: {done.stderr}")
    return done.stdout


def server_openapi() -> dict[str, Any]:
    """The OpenAPI of the server's routes (the same routes `create_app` serves; no database or chain)."""
    from fastapi import FastAPI

    from secureflow.api.server.app import ROUTE_MODULES

    app = FastAPI()
    for module in ROUTE_MODULES:
        app.router.routes.extend(module.router.routes)
    return app.openapi()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not up to date")
    args = parser.parse_args(argv)
    source = render(server_openapi())
    if args.check:
        current = TARGET.read_text() if TARGET.exists() else ""
        if current != source:
            print(f"{TARGET.relative_to(ROOT)} is stale: run .venv/bin/python -m tools.client_formats")
            return 1
        return 0
    TARGET.write_text(source)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
