"""A ``--config`` file, or a value pasted on the command line, checked before jsonargparse sees it.

A config may come from someone else (an issue thread, a colleague). jsonargparse shows a refused
value whole in its message, and loads a text given to a number's flag as YAML: a few hundred bytes
of YAML anchors expand to gigabytes. So a config is read at most ``MAX_CONFIG_BYTES``, and each
value's type and expanded size are checked here, before jsonargparse formats or uses it; a message
shows the value only bounded and escaped (``core/quoted.py``). No torch here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import yaml

from mlp_lightning.core.errors import ConfigError
from mlp_lightning.core.quoted import fits, quoted, short_text

SCALARS = (str, int, float, bool, type(None))  # what a flag's value (or an item of --drop's) may be
# a --config of flag: value lines is a few hundred bytes; one far larger is not one, and is not read whole.
# No value in it may expand (by YAML aliases) beyond this either
MAX_CONFIG_BYTES = 1 << 20


class NotPlain(ValueError):
    """A config value no flag takes (jsonargparse reports it as a config that does not load)."""


def config_value_problem(key: object, value: object, many: bool = False) -> str | None:
    """What is wrong with a config's ``key: value`` for jsonargparse to see it (``many``: a list of values
    is allowed, as ``--drop`` takes); None where nothing is."""
    items = value if many and isinstance(value, list) else [value]
    if not isinstance(key, SCALARS) or not all(isinstance(v, SCALARS) for v in items):
        what = "one value (a number, a text, true, false or null)" + (" or a list of them" if many else "")
        return f"{quoted(key, 40)} must be {what}, got {quoted(value)}"
    if not fits(value, MAX_CONFIG_BYTES) or any(isinstance(v, str) and expands(v) for v in items):
        return f"{quoted(key, 40)} expands (YAML aliases) past {MAX_CONFIG_BYTES} characters: {quoted(value)}"
    return None


def expands(text: str, load: Callable[[str], object] = yaml.safe_load) -> bool:
    """Whether ``text``, loaded as YAML as jsonargparse loads a number's flag, exceeds MAX_CONFIG_BYTES."""
    if "*" not in text:  # without an alias YAML is no larger than its text
        return False
    try:
        value = load(text)
    except (yaml.YAMLError, ValueError, RecursionError):
        return False
    return not fits(value, MAX_CONFIG_BYTES)


def checked_yaml(load: Callable[[str], object]) -> Callable[[str], object]:
    """``load`` (jsonargparse's YAML loader), refusing (``config_value_problem``) what no flag takes
    before jsonargparse formats or uses it. It sees every config jsonargparse loads: a ``--config``
    given as text and one a config names too."""

    def plain_yaml(text: str):
        value = load(text)
        for key, item in value.items() if isinstance(value, dict) else [("a value", value)]:
            problem = config_value_problem(key, item, many=key in ("drop", "a value"))
            if problem is not None:
                raise NotPlain(problem)
        return value

    return plain_yaml


def config_table(path: str) -> dict | None:
    """The ``key: value`` table of the config file ``path``, read at most MAX_CONFIG_BYTES; None where it is
    not a readable YAML table (the parser then says so, naming --config)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"--config {path}: over {MAX_CONFIG_BYTES} bytes, not a YAML file of flag: value lines"
            )
        table = yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError as err:  # the parser would read it with errors replaced
        raise ConfigError(
            f"--config {path}: not a UTF-8 text file ({err.reason} at byte {err.start})"
        ) from None
    except (ValueError, RecursionError) as err:  # an integer of more than 4300 digits; [[[[...]]]]
        raise ConfigError(
            f"--config {path}: not a YAML file of flag: value lines ({short_text(err)})"
        ) from None
    except (OSError, yaml.YAMLError):
        return None
    return table if isinstance(table, dict) else None


def refuse_expanding_values(argv: Sequence[str]) -> None:
    """A value on the command line (one pasted from someone else's command, say) that jsonargparse would
    load as YAML into more than MAX_CONFIG_BYTES characters (``expands``), refused before it is loaded."""
    for arg in argv:
        value = arg.partition("=")[2] if arg.startswith("--") else arg
        if expands(value):
            raise ConfigError(
                f"{quoted(arg, 60)} expands (YAML aliases) past {MAX_CONFIG_BYTES} characters: give the value"
            )


def config_paths(argv: Sequence[str]) -> list[str]:
    """The values given to ``--config``, in order."""
    paths = []
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--config" and i + 1 < len(argv):
            paths.append(argv[i + 1])
        elif arg.startswith("--config="):
            paths.append(arg.split("=", 1)[1])
    return paths
