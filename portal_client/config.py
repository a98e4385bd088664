"""Where the `portal` command finds the portal's URL and a token.

In order: `--url`/`--token`, then PORTAL_URL/PORTAL_TOKEN, then the per-user config file written by
`portal login`: $PORTAL_CONFIG when set, else $XDG_CONFIG_HOME/portal/config.toml (by default
~/.config/portal/config.toml; a config.json beside it is read too). The file holds a secret, so it
is written with mode 0600 in a 0700 folder, and a file others may read is refused.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path


class ConfigError(Exception):
    """The URL or token is missing, or the config file cannot be used (the message says what to do)."""


def config_path() -> Path:
    """The config file to read and write (it may not exist yet)."""
    if os.environ.get("PORTAL_CONFIG"):
        return Path(os.environ["PORTAL_CONFIG"]).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "portal"
    toml_path = base / "config.toml"
    json_path = base / "config.json"
    return json_path if json_path.exists() and not toml_path.exists() else toml_path


def load_config(path: Path | None = None) -> dict:
    """`{"url", "token"}` from the config file ({} when there is none)."""
    path = path or config_path()
    if not path.exists():
        return {}
    mode = path.stat().st_mode
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} may be read by others (mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path} is not valid {path.suffix.lstrip('.').upper() or 'TOML'}: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} should hold url and token.")
    return {k: str(data[k]) for k in ("url", "token") if data.get(k)}


def save_config(url: str, token: str, path: Path | None = None) -> Path:
    """Write url and token (mode 0600; the folder 0700), replacing the file whole."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.suffix == ".json":
        text = json.dumps({"url": url, "token": token}, indent=2) + "\n"
    else:  # a JSON string is a valid TOML basic string
        text = f"# written by `portal login`\nurl = {json.dumps(url)}\ntoken = {json.dumps(token)}\n"
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    return path


def resolve(url: str | None, token: str | None) -> tuple[str, str]:
    """The URL and token to use: flags, then environment, then the config file (each on its own)."""
    url = url or os.environ.get("PORTAL_URL") or None
    token = token or os.environ.get("PORTAL_TOKEN") or None
    if not url or not token:
        saved = load_config()
        url, token = url or saved.get("url"), token or saved.get("token")
    if not url or not token:
        missing = " and ".join(n for n, v in (("portal URL", url), ("token", token)) if not v)
        raise ConfigError(
            f"No {missing} given: pass --url/--token, set PORTAL_URL/PORTAL_TOKEN, or run "
            "`portal login --url URL --token TOKEN` (create a token on your profile page)."
        )
    return url, token
