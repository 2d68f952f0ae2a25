"""The ``puff`` command: ``puff [GLOBAL OPTIONS] COMMAND [ARGS...]``.

Global options (``--config``, runtime settings, one ``--<name>-<kind>-url`` per configured pool)
come before the command; everything after the command name belongs to the command. Commands
that run user code (``[[commands]]`` entries, ``python``, ``pytest``, ``django``,
``wait_forever``) run inside the Puff runtime, in a greenlet (or as a task on Puff's asyncio loop
for ``async def`` commands). Exit codes: 0 ok, 1 the command failed, 2 usage or configuration
error, 130/143 stopped by SIGINT/SIGTERM. See docs/cli.md.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import logging
import os
import runpy
import signal
import sys
import traceback
import types
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

import puff

from . import _runtime, _scheduler
from . import config as _config
from .config import RUNTIME_SETTINGS, ConfigError, PuffConfig

log = logging.getLogger("puff")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_POOL_HELP = {
    "postgres": "Postgres pool configuration for '{}'.",
    "redis": "Redis pool configuration for '{}'.",
    "pubsub": "PubSub configuration for '{}'.",
    "task_queue": "{} Redis TaskQueue configuration.",
}
_VALUE_FLAGS = {"--config"} | {flag for _v, flag, low in RUNTIME_SETTINGS.values() if low is not None}


class UsageError(Exception):
    """Bad command line: printed as ``puff: error: ...``, exit status 2."""


# ---- entry point -------------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the ``puff`` command and returns its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _setup_logging()
    try:
        return _main(argv)
    except UsageError as e:
        sys.stderr.write(f"puff: error: {e}\n")
        return EXIT_USAGE
    except ConfigError as e:
        sys.stderr.write(f"puff: config error: {e}\n")
        if e.detail:
            sys.stderr.write(e.detail if e.detail.endswith("\n") else e.detail + "\n")
        return EXIT_USAGE
    except SystemExit as e:  # argparse (--help, --version, errors)
        return _system_exit_code(e)
    except KeyboardInterrupt:
        return 128 + signal.SIGINT


def _main(argv: List[str]) -> int:
    global_args, command, args = split_argv(argv)
    if "-V" in global_args or "--version" in global_args:
        print(f"puff {puff.__version__}")
        return EXIT_OK
    if command in ("example-config", "example_config"):
        return _cmd_example_config(args)
    try:
        cfg = _config.load(_prescan_config(global_args))
    except ConfigError as e:
        wants_help = not argv or any(h in global_args or (command and h in args) for h in ("-h", "--help"))
        if not wants_help:
            raise
        # Help must work while puff.toml is broken: show it without the file's [[commands]].
        sys.stderr.write(f"puff: config error: {e}\npuff: (the help below leaves out what puff.toml defines)\n")
        cfg = PuffConfig()
    parser, flag_of = build_parser(cfg)
    ns = parser.parse_args(global_args)
    for dest, value in vars(ns).items():
        if dest in flag_of and value is not None:
            _config.override(cfg, dest, value, f"flag {flag_of[dest]}")
    if command is None:
        if not argv:
            parser.print_help()
            return EXIT_OK
        parser.error("a command is required (see the list above)")
    _config.current = cfg
    if cfg.add_cwd_to_path and (not sys.path or sys.path[0] != os.getcwd()):
        sys.path.insert(0, os.getcwd())
    if cfg.django:  # before Django imports: its postgresql modules may need Puff's psycopg stand-in
        from .contrib import django as _django  # noqa: F401 (docs/django.md)
    custom = cfg.command(command)
    if custom is not None:
        return _cmd_custom(cfg, custom, args)
    if command == "runserver":  # upstream's name for serve before 0.1.7
        from ._serve import cmd_serve

        return cmd_serve(cfg, args, command)
    if command == "django" and not cfg.django:
        raise UsageError("the django command needs `django = true` in puff.toml"
                         + (f" ({cfg.path})" if cfg.path else ""))
    handler = _BUILTINS.get(command)
    if handler is None:
        choices = list(_BUILTINS) + [c.command_name for c in cfg.commands]
        close = difflib.get_close_matches(command, choices, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UsageError(f"unknown command {command!r}{hint}; run `puff --help` for the list")
    return handler[1](cfg, args)


def split_argv(argv: List[str]):
    """(global options, command or None, command arguments): the command is the first word
    that is neither an option nor an option's value."""
    i = 0
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("-") or tok == "-":
            return argv[:i], tok, argv[i + 1:]
        takes_value = "=" not in tok and (tok in _VALUE_FLAGS or tok.endswith("-url"))
        i += 2 if takes_value else 1
    return argv, None, []


def _prescan_config(global_args: List[str]) -> Optional[str]:
    path = None
    for i, tok in enumerate(global_args):
        if tok == "--config" and i + 1 < len(global_args):
            path = global_args[i + 1]
        elif tok.startswith("--config="):
            path = tok.partition("=")[2]
    return path


def build_parser(cfg: PuffConfig):
    """The parser of the global options (its help also lists the commands). Returns it and a
    map from override keys (``runtime.io_threads``, ``postgres.default.url``) to flags."""
    p = argparse.ArgumentParser(
        prog="puff",
        usage="puff [GLOBAL OPTIONS] COMMAND [ARGS...]",
        description="Puff CLI. Reads puff.toml, or the file named by --config or PUFF_CONFIG.",
        epilog="Exit status: 0 ok, 1 command failed, 2 usage or config error, 130 SIGINT, "
               "143 SIGTERM.\nDocs: docs/cli.md, docs/config.md.\n\n☁ Thanks for using Puff ☁",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("-V", "--version", action="version", version=f"puff {puff.__version__}")
    p.add_argument("--config", metavar="PATH",
                   help="configuration file [env: PUFF_CONFIG] [default: ./puff.toml]")
    flag_of = {}
    group = p.add_argument_group("runtime options (override [runtime] in puff.toml)")
    for key, (var, flag, minimum) in RUNTIME_SETTINGS.items():
        dest = f"runtime.{key}"
        flag_of[dest] = flag
        current = getattr(cfg.runtime, key)
        if minimum is None:
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None,
                               help=f"use uvloop for Puff's asyncio loop [env: {var}] [default: {current}]")
        else:
            group.add_argument(flag, dest=dest, type=int, metavar="N", default=None,
                               help=f"[env: {var}] [default: {current}]")
    pools = list(cfg.pools())
    if pools:
        group = p.add_argument_group("pool URLs (one per configured pool)")
    for pool in pools:
        dest = f"{pool.kind}.{pool.name}.url"
        flag_of[dest] = pool.flag
        flags = [pool.flag]
        raw = f"--{pool.name}-{pool.kind.replace('_', '-')}-url"
        if raw != pool.flag:
            flags.append(raw)
        text = _POOL_HELP[pool.kind].format(pool.name)
        group.add_argument(*flags, dest=dest, metavar="URL", default=None,
                           help=f"{text} [env: {pool.env_var}] [default: {pool.safe_url}]".replace("%", "%%"))
    sub = p.add_subparsers(title="commands", metavar="COMMAND")
    for name, (text, _fn) in _BUILTINS.items():
        if name != "django" or cfg.django:
            sub.add_parser(name, help=text, add_help=False)
    for cmd in cfg.commands:
        sub.add_parser(cmd.command_name, add_help=False,
                       help=f"Execute python function `{cmd.function}` in a Puff context.")
    return p, flag_of


# ---- running inside the runtime ----------------------------------------------------------------


def run_in_runtime(cfg: PuffConfig, fn: Callable[..., Any], *args: Any, signal_ok: bool = False,
                   result_is_status: bool = False, options: Optional[puff.RuntimeOptions] = None) -> int:
    """Runs ``fn(*args)`` as the main greenlet (or asyncio task, for ``async def``) after
    creating ``puff.global_state``; returns the exit status. ``signal_ok``: SIGINT/SIGTERM is
    the normal way to stop (exit 0). ``result_is_status``: the return value is the status.
    ``options``: the runtime options (default: from ``cfg``)."""
    factory = None
    if cfg.global_state:
        factory = _config.import_object(cfg.global_state, "global_state", cfg.where("global_state"))
        if not callable(factory):
            raise ConfigError(f"global_state {cfg.global_state!r} is not callable "
                              f"(it is {type(factory).__name__})", *cfg.where("global_state"))
    if inspect.iscoroutinefunction(fn):
        async def entry():
            if factory is not None:
                puff.global_state = await puff.spawn(factory)
            return await fn(*args)
    else:
        def entry():
            if factory is not None:
                puff.global_state = factory()
            return fn(*args)
    try:
        result = puff.run(entry, options=options or cfg.runtime_options())
    except puff.SignalExit as e:
        return EXIT_OK if signal_ok else int(e.code)
    except SystemExit as e:
        return _system_exit_code(e)
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except Exception as e:  # noqa: BLE001 - the command failed: show where
        _print_exception(e)
        return EXIT_FAILED
    if result_is_status:
        return _status(result)
    return EXIT_OK


def _status(value: Any) -> int:
    if value is None:
        return EXIT_OK
    try:
        return int(value)
    except (TypeError, ValueError):
        return EXIT_FAILED


def _system_exit_code(e: SystemExit) -> int:
    if e.code is None:
        return EXIT_OK
    if isinstance(e.code, int):
        return e.code
    sys.stderr.write(f"{e.code}\n")  # like Python: sys.exit("message") prints it, status 1
    return EXIT_FAILED


_INTERNAL_FILES = {os.path.abspath(f) for f in (__file__, _runtime.__file__, _scheduler.__file__,
                                                runpy.__file__)}


def _print_exception(e: BaseException) -> None:
    """Prints the traceback without Puff's own leading frames (as Python hides runpy's)."""
    tb = e.__traceback__
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) in _INTERNAL_FILES:
        tb = tb.tb_next
    traceback.print_exception(type(e), e, tb or e.__traceback__, file=sys.stderr)
    sys.stderr.flush()


def _setup_logging() -> None:
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def _no_args(name: str, args: List[str], text: str) -> bool:
    """True if ``args`` asked for help (printed); a usage error if there are other args."""
    if args in (["-h"], ["--help"]):
        print(f"usage: puff {name}\n\n{text}")
        return True
    if args:
        raise UsageError(f"command {name!r} takes no arguments (got {' '.join(args)!r})")
    return False


# ---- commands ----------------------------------------------------------------------------------


def _cmd_custom(cfg: PuffConfig, cmd, args: List[str]) -> int:
    index = cfg.commands.index(cmd)
    where = cfg.where("commands", index, "function")
    fn = _config.import_object(cmd.function, "[[commands]] function", where)
    if not callable(fn):
        raise ConfigError(f"[[commands]] function {cmd.function!r} is not callable "
                          f"(it is {type(fn).__name__})", *where)
    takes_argv = _takes_argv(fn, cmd.function, where)
    if not takes_argv and _no_args(cmd.command_name, args,
                                   f"Execute python function `{cmd.function}` in a Puff context."):
        return EXIT_OK
    sys.argv = [cmd.command_name, *args]
    return run_in_runtime(cfg, fn, *([list(args)] if takes_argv else []))


def _takes_argv(fn: Callable, dotted: str, where) -> bool:
    """True if ``fn`` takes the argument list (one positional parameter or ``*args``)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    kwonly = [p for p in params if p.kind == p.KEYWORD_ONLY and p.default is p.empty]
    if len(required) > 1 or kwonly:
        raise ConfigError(f"[[commands]] function {dotted!r} has signature {sig}: a command function "
                          "takes no parameters, or one (the argument list, argv: list[str])", *where)
    return bool(positional) or any(p.kind == p.VAR_POSITIONAL for p in params)


_PYTHON_USAGE = """\
usage: puff python [SCRIPT | -c CODE | -m MODULE | -] [ARGS...]

Run Python inside the Puff runtime, in a greenlet: Puff calls (puff.sleep_ms(10), ...) work at
the top level. With no arguments, starts an interactive console. sys.argv and sys.path[0] are
set as `python` would set them, and __name__ is "__main__"."""


def _cmd_python(cfg: PuffConfig, args: List[str]) -> int:
    if not args:
        return run_in_runtime(cfg, _repl)
    first = args[0]
    if first in ("-h", "--help"):
        print(_PYTHON_USAGE)
        return EXIT_OK
    if first in ("-c", "-m"):
        if len(args) < 2:
            raise UsageError(f"python: {first} needs an argument")
        value, rest = args[1], args[2:]
        if not sys.path or sys.path[0] != os.getcwd():
            sys.path.insert(0, os.getcwd())  # like python -c / -m
        if first == "-c":
            return run_in_runtime(cfg, _exec_code, value, "<string>", ["-c", *rest])
        import importlib.util

        try:
            found = importlib.util.find_spec(value) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise UsageError(f"python: no module named {value!r}")
        sys.argv = [value, *rest]
        return run_in_runtime(cfg, runpy.run_module, value, None, "__main__", True)
    if first == "-":
        return run_in_runtime(cfg, lambda: _exec_code(sys.stdin.read(), "<stdin>", args))
    if first.startswith("-"):
        raise UsageError(f"python: unknown option {first!r} (expected SCRIPT, -c CODE, -m MODULE or -)")
    if not os.path.exists(first):
        raise UsageError(f"python: can't open file {first!r}: no such file or directory")
    if os.path.isfile(first):
        sys.path.insert(0, os.path.dirname(os.path.abspath(first)))
    sys.argv = list(args)
    return run_in_runtime(cfg, runpy.run_path, first, None, "__main__")


def _exec_code(code: str, filename: str, argv: List[str]) -> None:
    import builtins

    sys.argv = argv
    module = types.ModuleType("__main__")
    module.__builtins__ = builtins
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    try:
        exec(compile(code, filename, "exec"), module.__dict__)
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


def _repl() -> None:
    import code

    try:
        import readline  # noqa: F401 - line editing when available
    except ImportError:
        pass
    import greenlet

    from . import _native

    sys.argv = [""]
    console = code.InteractiveConsole({"__name__": "__main__", "__doc__": None, "puff": puff})
    me = greenlet.getcurrent()

    def on_sigint(signum, frame):
        # Ctrl-C interrupts the statement being run, as in Python's REPL, instead of stopping
        # the runtime; while the console waits on a Puff call the hub is running, so the
        # exception is delivered to the console's greenlet.
        if greenlet.getcurrent() is me:
            raise KeyboardInterrupt
        _native.schedule(me, KeyboardInterrupt(), True)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        console.interact(banner=f"Puff {puff.__version__} on Python {sys.version.split()[0]}. "
                                "This console runs in a greenlet: Puff calls work here.",
                         exitmsg="")
    finally:
        signal.signal(signal.SIGINT, previous)


def _cmd_pytest(cfg: PuffConfig, args: List[str]) -> int:
    try:
        import pytest
    except ImportError:
        raise UsageError("pytest is not installed in this environment (pip install pytest)") from None
    args = list(args)
    if cfg.pytest_path:
        root = Path(cfg.pytest_path).resolve()
        if not root.is_dir():
            raise ConfigError(f"pytest_path {cfg.pytest_path!r} is not a directory",
                              *cfg.where("pytest_path"))
        os.chdir(root)
        if not any(a == "--rootdir" or a.startswith("--rootdir=") for a in args):
            args.insert(0, f"--rootdir={root}")
    sys.argv = ["pytest", *args]
    return run_in_runtime(cfg, pytest.main, args, result_is_status=True)


def _cmd_django(cfg: PuffConfig, args: List[str]) -> int:
    try:
        from django.core.management import ManagementUtility
    except ImportError as e:
        raise UsageError(f"the django command needs Django, which cannot be imported ({e}); "
                         "install it in this environment (pip install django)") from None
    if args and args[0] == "runserver":
        raise UsageError("`puff django runserver` is not supported: Django's development server "
                         "does not run inside Puff; serve the project with `puff serve` and "
                         "wsgi = \"<project>.wsgi:application\" in puff.toml")
    if args and args[0] == "test" and _parallel_requested(args[1:]):
        raise UsageError("`puff django test --parallel` is not supported: Django's parallel runner forks "
                         "processes that have no Puff runtime; run the tests in one process (leave out "
                         "--parallel, or --parallel 1)")
    argv = ["puff django", *args]
    sys.argv = argv
    return run_in_runtime(cfg, lambda: ManagementUtility(argv).execute(), result_is_status=True)


def _parallel_requested(args: List[str]) -> bool:
    """True when `django test` arguments ask for more than one test process."""
    for i, a in enumerate(args):
        if a == "--":
            break
        if a.startswith("--parallel="):
            return a.split("=", 1)[1] != "1"
        if a == "--parallel":
            value = args[i + 1] if i + 1 < len(args) else ""
            return value != "1"  # no value (or "auto"): one process per CPU
    return False


def _cmd_wait_forever(cfg: PuffConfig, args: List[str]) -> int:
    if _no_args("wait_forever", args, _BUILTINS["wait_forever"][0]):
        return EXIT_OK

    def wait() -> None:
        log.info("Program will now wait forever.")
        while True:
            puff.sleep_ms(3_600_000)

    return run_in_runtime(cfg, wait, signal_ok=True)


def _cmd_check(cfg: PuffConfig, args: List[str]) -> int:
    if _no_args("check", args, _BUILTINS["check"][0]):
        return EXIT_OK
    from ._check import run_check

    return run_check(cfg, sys.stdout)


def _cmd_config(cfg: PuffConfig, args: List[str]) -> int:
    if _no_args("config", args, _BUILTINS["config"][0]):
        return EXIT_OK
    sys.stdout.write(_config.dump(cfg))
    return EXIT_OK


def _cmd_example_config(args: List[str]) -> int:
    if _no_args("example-config", args, "Print a commented sample puff.toml."):
        return EXIT_OK
    sys.stdout.write(_config.EXAMPLE_CONFIG)
    return EXIT_OK


def _cmd_serve(cfg: PuffConfig, args: List[str]) -> int:
    from ._serve import cmd_serve

    return cmd_serve(cfg, args)


#: Built-in commands: name -> (help, handler(cfg, args) -> exit status).
_BUILTINS = {
    "serve": ("Serve the WSGI/ASGI app (`wsgi`/`asgi` in puff.toml, or --wsgi/--asgi) over HTTP/1.1, HTTP/2 and WebSocket; alias runserver.", _cmd_serve),
    "python": ("Run a script, -c code, -m module or a REPL inside the Puff runtime.", _cmd_python),
    "pytest": ("Run pytest inside the Puff runtime; every argument goes to pytest.", _cmd_pytest),
    "django": ("Run a Django management command inside the Puff runtime.", _cmd_django),
    "wait_forever": ("Run until SIGINT/SIGTERM (for task-queue workers and pubsub listeners).",
                     _cmd_wait_forever),
    "check": ("Validate the configuration and try to reach every configured pool.", _cmd_check),
    "config": ("Print the effective configuration as TOML (passwords hidden).", _cmd_config),
    "example-config": ("Print a commented sample puff.toml.", lambda cfg, args: _cmd_example_config(args)),
}
