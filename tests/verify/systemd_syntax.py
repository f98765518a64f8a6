"""Reading printed systemd units back as systemd would, to check what a setting's value really is.

Follows systemd.syntax(7) "Quoting" and systemd.service(5) "Command lines", strictly: specifiers are
expanded first (only ``%%`` is expected here), then a value is split into items, each either wrapped
whole in double or single quotes or unquoted, with C-style escapes; on a command line ``$$`` then stands
for ``$``. Anything this reader does not expect (another specifier or escape, a variable, a continued line,
a control character) raises ``ValueError`` rather than guessing.
"""

from __future__ import annotations

_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
                   '"': '"', "'": "'", "s": " "}
_WHITESPACE = " \t"


def units(text: str) -> dict[str, dict[str, dict[str, list[str]]]]:
    """Unit name (from the ``# /etc/systemd/system/NAME`` line before it) -> section -> key -> raw values."""
    out: dict[str, dict[str, dict[str, list[str]]]] = {}
    unit: dict[str, dict[str, list[str]]] | None = None
    section: dict[str, list[str]] | None = None
    for line in text.split("\n"):
        if any(ord(c) < 32 or ord(c) == 127 for c in line):
            raise ValueError(f"a control character in {line!r}")
        if line.startswith("# /etc/systemd/system/"):
            unit = out.setdefault(line.rsplit("/", 1)[1], {})
            continue
        if not line.strip() or line.startswith(("#", ";")):
            continue
        if line.endswith("\\"):
            raise ValueError(f"a continued line: {line!r}")
        if line.startswith("[") and line.endswith("]"):
            assert unit is not None
            section = unit.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        if not sep or section is None:
            raise ValueError(f"not a setting: {line!r}")
        section.setdefault(key.strip(), []).append(value.strip())
    return out


def _undoubled(text: str, char: str, what: str) -> str:
    """``text`` with each doubled ``char`` as one; a single ``char`` (``what``: a specifier, a variable)
    is not expected in the units custody writes."""
    out, i = [], 0
    while i < len(text):
        if text[i] == char:
            if text[i + 1:i + 2] != char:
                raise ValueError(f"{what} in {text!r}")
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out)


def expand_specifiers(raw: str) -> str:
    return _undoubled(raw, "%", "a specifier")


def words(raw: str) -> list[str]:
    """The items of a setting's value whose quoting is allowed, unquoted and unescaped."""
    text, out, i = expand_specifiers(raw), [], 0
    while True:
        while i < len(text) and text[i] in _WHITESPACE:
            i += 1
        if i == len(text):
            return out
        quote = text[i] if text[i] in "\"'" else None
        i += 1 if quote else 0
        word = []
        while True:
            if i == len(text):
                if quote:
                    raise ValueError(f"an unclosed quote in {raw!r}")
                break
            c = text[i]
            if quote and c == quote:
                i += 1
                if i < len(text) and text[i] not in _WHITESPACE:
                    raise ValueError(f"a closing quote not followed by whitespace in {raw!r}")
                break
            if not quote and c in _WHITESPACE:
                break
            if not quote and c in "\"'":
                raise ValueError(f"a quote inside an unquoted item of {raw!r}")
            if c == "\\":
                c, i = _escape(text, i + 1, raw)
            else:
                i += 1
            word.append(c)
        out.append("".join(word))


def _escape(text: str, i: int, raw: str) -> tuple[str, int]:
    c = text[i:i + 1]
    if c in _SIMPLE_ESCAPES and c:
        return _SIMPLE_ESCAPES[c], i + 1
    for letter, digits, base in (("x", 2, 16), ("u", 4, 16), ("U", 8, 16)):
        if c == letter:
            return chr(int(text[i + 1:i + 1 + digits], base)), i + 1 + digits
    if c.isdigit():
        return chr(int(text[i:i + 3], 8)), i + 3
    raise ValueError(f"an unknown escape \\{c} in {raw!r}")


def command_line(raw: str) -> list[str]:
    """ExecStart=: the argv systemd runs (``$$`` is a literal ``$``; a variable is not expected here)."""
    return [_undoubled(word, "$", "a variable") for word in words(raw)]


def environment(raw: str) -> dict[str, str]:
    """Environment=: the assignments (no variable expansion: ``$`` means itself)."""
    pairs = [word.partition("=") for word in words(raw)]
    if any(not sep for _, sep, _ in pairs):
        raise ValueError(f"not an assignment in {raw!r}")
    return {name: value for name, _, value in pairs}
