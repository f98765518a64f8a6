"""Every message the web application can show has its Chinese translation, with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

WEB = Path(__file__).resolve().parents[2] / "web"
METHODS = [("web/**.py", "python"), ("web/templates/**.html", "jinja2")]
KEYWORDS = {"_": None, "gettext": None, "_l": None, "lazy_gettext": None}


def _extracted() -> set[str]:
    found = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
            WEB.parent, method_map=METHODS, keywords=KEYWORDS, options_map={"web/templates/**.html": {}}):
        if isinstance(message, str) and message:
            found.add(message)
    return found


def test_every_message_has_a_chinese_translation() -> None:
    with (WEB / "translations/zh_CN/LC_MESSAGES/messages.po").open("rb") as f:
        catalog = read_po(f, locale="zh_CN")
    translated = {m.id: m.string for m in catalog if m.id and m.string}
    messages = _extracted()
    assert len(messages) > 150
    missing = sorted(messages - set(translated))
    assert not missing, f"untranslated: {missing}"
    for msgid in messages:
        placeholders = sorted(re.findall(r"%\(\w+\)\w", msgid))
        assert sorted(set(re.findall(r"%\(\w+\)\w", translated[msgid]))) == sorted(set(placeholders)), msgid


def test_the_catalogue_compiles_at_start_without_a_build_step() -> None:
    from web.i18n import load_catalogs

    catalogs = load_catalogs()
    assert catalogs["zh_CN"].gettext("Dashboard") == "总览"
    assert not list(WEB.glob("translations/*/LC_MESSAGES/*.mo"))  # nothing compiled to go stale
