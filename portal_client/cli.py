"""The `portal` command: the common actions of PortalClient from a shell (docs/CLIENT.md).

`portal [--url URL] [--token TOKEN] [--json] [--progress|--no-progress] <command> ...`; run
`portal <command> --help` for each. Exit status: 0 done; 1 the portal refused (its message on
stderr); 2 bad usage or no URL/token; 3 a job ended failed or cancelled; 4 a wait timed out;
130 interrupted. With --json, results (and refusals, as `{"error": {...}}`) are JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import requests

from portal_client import commands
from portal_client.client import JobTimeout, PortalClient, PortalError
from portal_client.commands import _err, _out
from portal_client.config import ConfigError, config_path, resolve


def _global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """The options every command takes, before or after its name (`portal models list --json`)."""
    parser.add_argument("--url", default=default, help="the portal's base URL (else PORTAL_URL, else the config file)")
    parser.add_argument("--token", default=default, help="an API token (else PORTAL_TOKEN, else the config file)")
    parser.add_argument("--json", action="store_true", default=default, help="print results as JSON on stdout")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--progress", dest="progress", action="store_true", default=default, help="always show progress")
    shown.add_argument(
        "--no-progress", dest="progress", action="store_false", default=default, help="never show progress"
    )
    parser.add_argument("--timeout", type=float, default=default, help="seconds per HTTP request (default 60)")


COMMON = argparse.ArgumentParser(add_help=False)
_global_options(COMMON, argparse.SUPPRESS)  # SUPPRESS: a command's copy never hides the top-level value


def _add(parent, name: str, handler, help_text: str) -> argparse.ArgumentParser:
    parser = parent.add_parser(name, help=help_text, description=help_text, parents=[COMMON])
    parser.set_defaults(handler=handler)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="portal",
        description="The MLOps portal from a shell: models, features, training, predictions, promotions.",
        epilog="URL and token: --url/--token, else PORTAL_URL/PORTAL_TOKEN, else `portal login`'s config file.",
    )
    _global_options(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)

    p = _add(sub, "login", commands.login, "save the URL and token to your config file (mode 0600)")
    p.add_argument("--no-verify", action="store_true", help="save without asking the portal who the token is")
    _add(sub, "whoami", commands.whoami, "who the token belongs to")

    models = sub.add_parser("models", help="registered models and versions").add_subparsers(
        dest="action", metavar="<action>", required=True
    )
    p = _add(models, "list", commands.models_list, "models you may view")
    p.add_argument("--q", default="", help="search text")
    p.add_argument("--tag", default="")
    p = _add(models, "versions", commands.models_versions, "a model's versions")
    p.add_argument("name")
    p = _add(models, "register", commands.models_register, "upload an ONNX file as a model's next version")
    p.add_argument("name")
    p.add_argument("file", help="the .onnx file")
    p.add_argument("--description", default="")
    p.add_argument("--metric", action="append", default=[], metavar="KEY=VALUE", help="repeatable")
    p.add_argument("--tag", action="append", default=[], help="repeatable")
    p.add_argument("--lineage", default=None, metavar="JSON", help='e.g. {"run_id": "12"}')
    p.add_argument("--state-dict", default=None, help="safetensors weights to store beside it")
    p.add_argument("--no-create", action="store_true", help="fail when the model does not exist yet")
    p.add_argument("--team", default=None, help="team slug for a new model")
    p = _add(models, "download", commands.models_download, "download a version's ONNX file (digest checked)")
    p.add_argument("name")
    p.add_argument("version", help="a version number or an alias")
    p.add_argument("-o", "--output", default=None, help="file to write (default <name>-v<version>.onnx)")
    p.add_argument("--state-dict", action="store_true", help="the safetensors weights instead")

    alias = sub.add_parser("alias", help="model aliases").add_subparsers(
        dest="action", metavar="<action>", required=True
    )
    p = _add(alias, "get", commands.alias_get, "the version an alias points at")
    p.add_argument("model")
    p.add_argument("alias", nargs="?", help="omit to list every alias")
    p = _add(alias, "set", commands.alias_set, "point an alias at a version (protected ones: `portal promote`)")
    p.add_argument("model")
    p.add_argument("alias")
    p.add_argument("version", type=int)

    features = sub.add_parser("features", help="the feature store").add_subparsers(
        dest="action", metavar="<action>", required=True
    )
    p = _add(features, "online", commands.features_online, "latest feature values for some entities")
    p.add_argument("features", nargs="+", metavar="VIEW:FEATURE")
    p.add_argument("--entity", action="append", required=True, metavar="KEY=V1,V2", help="join key values")

    sets = sub.add_parser("training-sets", help="point-in-time training sets").add_subparsers(
        dest="action", metavar="<action>", required=True
    )
    p = _add(sets, "build", commands.training_sets_build, "join features onto entity rows")
    p.add_argument("name")
    p.add_argument("--features", nargs="+", required=True, metavar="VIEW:FEATURE")
    rows = p.add_mutually_exclusive_group(required=True)
    rows.add_argument("--entity-rows", metavar="FILE.json", help="a JSON list of rows (join keys, event_timestamp)")
    rows.add_argument("--entity-table", metavar="FILE", help="a CSV or Parquet file, uploaded")
    p.add_argument("--team", default=None)
    p = _add(sets, "data", commands.training_sets_data, "a training set's rows (a file, or JSON on stdout)")
    p.add_argument("id", type=int)
    p.add_argument("-o", "--output", default=None, help="file to write; without it rows print as JSON")
    p.add_argument("--format", choices=["parquet", "csv", "json"], default=None, help="default: from -o's suffix")

    scripts = sub.add_parser("scripts", help="your own training scripts").add_subparsers(
        dest="action", metavar="<action>", required=True
    )
    p = _add(scripts, "register", commands.scripts_register, "register a .py file or a project archive")
    p.add_argument("name")
    p.add_argument("path", help="a .py file, an archive (.zip, .tar.gz) or a folder (archived for you)")
    p.add_argument("--entry-point", default=None, help="the file to run inside an archive")
    p.add_argument("--description", default=None)
    p.add_argument("--team", default=None)
    p.add_argument("--new-version", action="store_true", help="upload the next version of an existing script")
    p = _add(scripts, "versions", commands.scripts_versions, "a script's versions")
    p.add_argument("name")

    p = _add(sub, "train", commands.train, "launch a training job from a template or your script")
    p.add_argument("template", nargs="?", help="a template name (portal train --list shows them)")
    p.add_argument("--script", default=None, metavar="NAME[:VERSION]")
    p.add_argument("--list", action="store_true", help="list the templates")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="repeatable (JSON values)")
    p.add_argument("--data", default=None, metavar="JSON", help='e.g. {"dataset": "wine"}')
    p.add_argument("--dataset", default=None)
    p.add_argument("--training-set", type=int, default=None, metavar="ID")
    p.add_argument("--label", default=None, help="label column of --training-set")
    for flag, kind in (
        ("--resource-class", str), ("--region", str), ("--priority", int), ("--max-runtime-s", int),
        ("--max-memory-mb", int), ("--experiment", int), ("--model-name", str), ("--team", str), ("--seed", int),
    ):  # fmt: skip
        p.add_argument(flag, type=kind, default=None)
    p.add_argument("--allow-cpu-fallback", action="store_true", default=None)
    p.add_argument("--wait", action="store_true", help="follow the job until it ends")
    p.add_argument("--wait-timeout", type=float, default=None, metavar="S")

    jobs = sub.add_parser("jobs", help="training jobs").add_subparsers(dest="action", metavar="<action>", required=True)
    for name, handler, text in (
        ("status", commands.jobs_status, "a job's state and progress"),
        ("wait", commands.jobs_wait, "follow a job until it ends (exit 3 unless it succeeded)"),
        ("cancel", commands.jobs_cancel, "stop a job"),
        ("log", commands.jobs_log, "the last 64 KiB of a job's output"),
    ):
        p = _add(jobs, name, handler, text)
        p.add_argument("id", type=int)
        if name == "wait":
            p.add_argument("--wait-timeout", type=float, default=None, metavar="S")

    p = _add(sub, "predict", commands.predict, "score rows on an endpoint")
    p.add_argument("endpoint")
    p.add_argument("--inputs", default=None, metavar="JSON", help='[[...], ...] or {"col": [...]}; else stdin')
    p.add_argument("--file", default=None, help="a JSON file with the inputs")
    p.add_argument("--key", default=None, help="caller key: keeps one route while weights hold")

    promote = sub.add_parser("promote", help="promotion requests").add_subparsers(
        dest="action", metavar="<action>", required=True
    )
    p = _add(promote, "request", commands.promote_request, "ask to move a protected alias to a version")
    p.add_argument("model")
    p.add_argument("version", type=int)
    p.add_argument("alias")
    p.add_argument("--justification", required=True)
    p.add_argument("--change-type", choices=["standard", "normal", "emergency"], default=None)
    p.add_argument("--risk", default=None)
    p.add_argument("--impact", default=None)
    p.add_argument("--rollback-plan", default=None)
    p = _add(promote, "status", commands.promote_status, "a promotion request's state, checks and decisions")
    p.add_argument("id", type=int)
    return parser


def _emit_error(args, status: int | None, message: str, detail: Any = None) -> None:
    if getattr(args, "json", False):
        _out(json.dumps({"error": {"status": status, "message": message, "detail": detail}}))
    prefix = f"portal: refused ({status}): " if status else "portal: error: "
    _err(prefix + message)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.json = bool(args.json)
    args.timeout = args.timeout or 60.0
    if args.progress is None:
        args.progress = sys.stderr.isatty() and not args.json
    try:
        if args.handler is commands.login:
            return commands.login(args, None)
        url, token = resolve(args.url, args.token)
        client = PortalClient(url, token, timeout=args.timeout)
        return args.handler(args, client)
    except PortalError as error:
        message = error.message
        if error.status == 401:
            message += " (check the token: --token, PORTAL_TOKEN or " + str(config_path()) + ")"
        _emit_error(args, error.status, message, error.detail)
        return 1
    except JobTimeout as error:  # before OSError: a TimeoutError is one
        _emit_error(args, None, str(error), error.job)
        return 4
    except requests.RequestException as error:  # before OSError: requests' errors are IOErrors
        _emit_error(args, None, f"cannot reach the portal: {error}")
        return 1
    except (ConfigError, commands.UsageError, ValueError, OSError) as error:
        _emit_error(args, None, str(error))
        return 2
    except KeyboardInterrupt:
        _err("portal: interrupted")
        return 130
