"""Languages: Chinese (zh_CN) by default, English available.

Translations live as ``.po`` files in ``web/translations`` (msgids are
English). They are compiled in memory when the application starts, so a
clean checkout needs no build step and no ``.mo`` file can go stale.
"""

from __future__ import annotations

import io
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from flask import Flask, request, session
from flask_babel import Babel

TRANSLATIONS = Path(__file__).with_name("translations")


def load_catalogs() -> dict[str, Translations]:
    """Every ``<lang>/LC_MESSAGES/messages.po`` under ``web/translations``, compiled."""
    out: dict[str, Translations] = {}
    for po in sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po")):
        lang = po.parent.parent.name
        with po.open("rb") as f:
            catalog = read_po(f, locale=lang)
        buffer = io.BytesIO()
        write_mo(buffer, catalog, use_fuzzy=False)
        buffer.seek(0)
        out[lang] = Translations(fp=buffer, domain="messages")
    return out


def select_locale() -> str:
    from flask import current_app

    languages = current_app.config["LANGUAGES"]
    chosen = request.args.get("lang") or session.get("lang") or request.cookies.get("custody_lang")
    if chosen in languages:
        return str(chosen)
    return str(current_app.config["BABEL_DEFAULT_LOCALE"])


def init_i18n(app: Flask) -> Babel:
    babel = Babel(app, locale_selector=select_locale)
    with app.app_context():
        domain = babel.domain_instance
    catalogs = load_catalogs()
    for lang in app.config["LANGUAGES"]:
        # English msgids: an empty catalogue for "en" returns them as they are.
        domain.cache[(str(Locale.parse(lang)), "messages")] = catalogs.get(lang, Translations())
    return babel
