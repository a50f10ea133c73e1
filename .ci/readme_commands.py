"""Print the README's two set-up commands, one a line, as the README's first code block has them.

    python3 .ci/readme_commands.py [README]      (default: README.md at the repository root)

The README promises two commands in its first fenced code block: one that sets up and trains,
one that sets up and runs the tests. CI (.ci/run) runs exactly what this prints, so the README
cannot drift from what CI checks. A trailing ``# comment`` is dropped the way bash drops it: a
``#`` that starts a word, outside quotes; ``"a # b"``, ``'#'``, ``\\#`` and ``x#y`` are not
comments. Lines that end in a backslash continue on the next one. Blank lines and lines that are
only a comment are not commands.

Exits 1, saying why, unless the block holds exactly two commands. Standard library only: it runs
before any virtual environment exists.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

EXPECTED = 2
DEFAULT_README = Path(__file__).resolve().parents[1] / "README.md"
SHELL_LANGUAGES = ("bash", "sh", "shell")
# an opening fence: up to 3 spaces, then ``` or ~~~ (3 or more), then the info string
_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
# characters after which a '#' starts a word (bash's metacharacters and blanks)
_WORD_BREAK = " \t;&|()<>"


class ReadmeError(Exception):
    """The README has no usable first code block."""


def first_code_block(text: str) -> tuple[str, list[str]]:
    """(info string, lines) of the first fenced code block in ``text``."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        opening = _FENCE.match(line)
        if not opening:
            continue
        fence = opening["fence"]
        body = []
        for inner in lines[i + 1 :]:
            stripped = inner.strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}:
                return opening["info"].strip(), body
            body.append(inner)
        raise ReadmeError(f"the first code block (line {i + 1}) is never closed")
    raise ReadmeError("there is no fenced code block")


def strip_comment(line: str) -> str:
    """``line`` without a trailing bash comment, and without trailing blanks."""
    quote = None  # the quote character we are inside, if any
    i = 0
    while i < len(line):
        ch = line[i]
        if quote == "'":
            if ch == "'":
                quote = None
        elif quote == '"':
            if ch == "\\":
                i += 1  # the next character is escaped
            elif ch == '"':
                quote = None
        elif ch == "\\":
            i += 1
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in _WORD_BREAK):
            return line[:i].rstrip()
        i += 1
    if quote is not None:
        raise ReadmeError(f"unclosed {quote} quote in: {line}")
    return line.rstrip()


def commands(text: str) -> list[str]:
    """The commands of the first code block of a README's ``text``; exactly two, else ReadmeError."""
    info, body = first_code_block(text)
    language = info.split()[0] if info else ""
    if language not in SHELL_LANGUAGES:
        raise ReadmeError(f"the first code block is {language or 'unlabelled'!r}, not a ```bash block")
    found: list[str] = []
    pending = ""
    for raw in body:
        line = strip_comment(raw)
        if pending:
            line = line.lstrip()
        if (len(line) - len(line.rstrip("\\"))) % 2:  # an odd number of backslashes: a continuation
            pending += line[:-1].rstrip() + " "
            continue
        command = (pending + line).strip()
        pending = ""
        if command:
            found.append(command)
    if pending.strip():
        raise ReadmeError("the first code block ends in a line continued with a backslash")
    if len(found) != EXPECTED:
        listing = "".join(f"\n  {c}" for c in found)
        raise ReadmeError(
            f"the first code block holds {len(found)} command(s), not {EXPECTED} "
            f"(one to set up and train, one to set up and run the tests):{listing or ' none'}"
        )
    return found


def main(argv: list[str]) -> int:
    if len(argv) > 1 or (argv and argv[0].startswith("-")):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    readme = Path(argv[0]) if argv else DEFAULT_README
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"readme_commands.py: cannot read {readme}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        found = commands(text)
    except ReadmeError as exc:
        print(f"readme_commands.py: {readme}: {exc}", file=sys.stderr)
        return 1
    print("\n".join(found))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
