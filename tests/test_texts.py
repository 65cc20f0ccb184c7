"""What people read on WhatsApp is worded in one module, `bot/texts.py`. A heuristic over the rest of the
bot's code finds Spanish for WhatsApp written elsewhere, by the shape of the code, not by a word list:

- a string literal with "¿", "¡" or WhatsApp's *bold*, anywhere but a docstring, a log call or a raised
  exception;
- a string literal that is (part of) the text handed to a reply or notice builder: the arguments of
  `text`, `fit`, `OutgoingMessage`, `TemplateMessage`, `Choice`, `Notice`, `queue_reply`, `_with_prompt`
  and of any function of the texts module (`r.…`, `texts.…`), and the keywords `body=`, `note=`,
  `question=`, `released_text=`. Only the text-shaped parts of an argument are read (literals, f-strings,
  `+`, `or`, conditionals), not the arguments of a call nested in it: in `r.duplicate(str(d.get("numero")))`
  "numero" is a key, not a sentence.

It does not see a sentence built in a variable first (`parts.append("tu ubicación")`); review does.
Log messages, the API's error JSON and setting errors stay where they are: nobody reads them on WhatsApp.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import ROOT

TEXTS = ROOT / "bot" / "texts.py"
BUILDERS = frozenset({"text", "fit", "OutgoingMessage", "TemplateMessage", "Choice", "Notice", "queue_reply",
                      "_with_prompt"})
TEXT_KEYWORDS = frozenset({"body", "note", "question", "released_text"})
TEXTS_ALIASES = frozenset({"r", "texts"})
LOG_METHODS = frozenset({"debug", "info", "warning", "error", "exception", "critical", "log"})
SPANISH_MARKS = re.compile(r"[¿¡]|\*[^\W_][^*\n]*(?<=\S)\*")  # *bold*, not a cron's "*/10 * * * *"


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def _is_builder(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in TEXTS_ALIASES:
        return True
    return _name(func) in BUILDERS


def _text_literals(node: ast.expr) -> list[ast.Constant]:
    """The string literals of a text-shaped expression (not those inside calls nested in it)."""
    if isinstance(node, ast.Constant):
        return [node] if isinstance(node.value, str) else []
    children: list[ast.expr] = []
    if isinstance(node, ast.JoinedStr):
        children = list(node.values)
    elif isinstance(node, ast.BinOp):
        children = [node.left, node.right]
    elif isinstance(node, ast.BoolOp):
        children = list(node.values)
    elif isinstance(node, ast.IfExp):
        children = [node.body, node.orelse]
    elif isinstance(node, (ast.Tuple, ast.List)):
        children = list(node.elts)
    return [c for child in children for c in _text_literals(child)]


def _docstrings(tree: ast.Module) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _exempt(tree: ast.Module) -> set[int]:
    """Docstrings, and everything inside a log call or a raise."""
    out = _docstrings(tree)
    for node in ast.walk(tree):
        is_log = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LOG_METHODS
        if is_log or isinstance(node, ast.Raise):
            out |= {id(n) for n in ast.walk(node)}
    return out


def stray_texts(source: str) -> list[tuple[int, str]]:
    """(line, literal) of what looks like WhatsApp text in `source`."""
    tree = ast.parse(source)
    exempt = _exempt(tree)
    found: dict[int, tuple[int, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in exempt \
                and SPANISH_MARKS.search(node.value):
            found[id(node)] = (node.lineno, node.value)
        if isinstance(node, ast.Call) and _is_builder(node) and id(node) not in exempt:
            args = [*node.args, *(k.value for k in node.keywords)]
        elif isinstance(node, ast.Call):
            args = [k.value for k in node.keywords if k.arg in TEXT_KEYWORDS]
        else:
            continue
        for arg in args:
            for literal in _text_literals(arg):
                if re.search(r"[A-Za-zÁÉÍÓÚáéíóúñÑ]", literal.value):
                    found[id(literal)] = (literal.lineno, literal.value)
    return sorted(found.values())


def bot_modules() -> list[Path]:
    return sorted(p for p in (ROOT / "bot").rglob("*.py") if p != TEXTS)


def test_whatsapp_texts_are_worded_only_in_bot_texts() -> None:
    strays = {str(p.relative_to(ROOT)): s for p in bot_modules() if (s := stray_texts(p.read_text(encoding="utf-8")))}
    assert strays == {}, "Spanish for WhatsApp outside bot/texts.py (move it there): " + repr(strays)


def test_the_finder_finds_texts_in_each_shape_it_knows() -> None:
    source = '''
"""Docstring: ¿exempt?"""
import logging
log = logging.getLogger(__name__)

def reply(r, name, data):
    """¿Also exempt?"""
    log.warning("¿Un log?: %s", name)
    if not name:
        raise ValueError("¡nombre vacío!")
    key = data.get("estado")
    a = r.text("Hola, " + name)
    b = OutgoingMessage(body=f"Tu reporte {name} cambió", buttons=())
    c = _t(state, data, note=name or "El usuario dijo algo")
    d = r.duplicate(str(data.get("numero")), key, None)
    e = "¿Seguimos?"
    f = "Escribe *mis reportes*"
    g = "17 */10 * * * *"
    return a, b, c, d, e, f, g
'''
    assert {text for _, text in stray_texts(source)} == {
        "Hola, ", "Tu reporte ", " cambió", "El usuario dijo algo", "¿Seguimos?", "Escribe *mis reportes*"}


def test_the_scan_covers_the_conversation_and_the_outbound_queue() -> None:
    scanned = {p.relative_to(ROOT).parts[:2] for p in bot_modules()}
    assert ("bot", "conversation") in scanned and ("bot", "outbound") in scanned
