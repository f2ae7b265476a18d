"""Argo CD's health check of a DeepSeekDeployment, run as Argo CD runs it: Lua 5.1, `obj` global.

Argo CD evaluates `resource.customizations.health.<group>_<kind>` with gopher-lua (Lua 5.1) and
only the safe standard libraries, the object converted from JSON to Lua tables (arrays 1-based,
numbers as floats). `health` does the same with lupa's Lua 5.1, the dangerous globals removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[2]
HEALTH_LUA = ROOT / "charts" / "deepseek-operator" / "files" / "argocd-health.lua"
SNIPPET = ROOT / "charts" / "deepseek-operator" / "files" / "argocd-cm-snippet.yaml"
CUSTOMIZATION_KEY = "resource.customizations.health.deepseek.serving.dev_DeepSeekDeployment"
STATUSES = ("Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown")
"""What Argo CD accepts from a health script."""
_UNSAFE_GLOBALS = ("os", "io", "debug", "package", "require", "dofile", "loadfile", "load", "loadstring")


@dataclass(frozen=True)
class Health:
    status: str
    message: str


def health(obj: dict[str, Any], script: str | None = None) -> Health:
    """The health Argo CD would show for `obj` (a whole object as the API returns it)."""
    from lupa import lua51

    lua = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    globals_ = lua.globals()
    for name in _UNSAFE_GLOBALS:
        globals_[name] = None
    globals_["obj"] = _to_lua(lua, obj)
    result = lua.execute(script if script is not None else HEALTH_LUA.read_text())
    found = Health(str(result["status"]), str(result["message"] or ""))
    assert found.status in STATUSES, found
    return found


def _to_lua(lua: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return lua.table_from({key: _to_lua(lua, item) for key, item in value.items() if item is not None})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, item) for item in value])
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # gopher-lua's numbers are float64
    return value
