"""Offline reading of what field workers write: every fact a report needs, from one message or a turn.

Pure functions over text, deterministic, no I/O: the default provider and the safety net under the remote
models (the engine merges a model's answer with these, so a code the model missed is still read). They
are written for Mexican Spanish as typed on a phone in a hurry ("el refri 1000 4512 de la tienda centro ya
no enfría", "sip", "nel", 👍), and understand plain English too.
"""

from __future__ import annotations

import re
import unicodedata

from core.ai.types import EquipmentType, Extraction, Intent

REFRI_WORDS = (
    "refrigerador", "refri", "refris", "nevera", "congelador", "enfriador", "frigorifico", "heladera",
    "camara fria", "cuarto frio", "vitrina", "frigobar", "fridge", "refrigerator", "freezer", "cooler",
)
VEHICLE_WORDS = (
    "vehiculo", "camion", "auto", "carro", "camioneta", "coche", "moto", "motocicleta", "unidad", "troca",
    "furgoneta", "pick up", "pickup", "tracto", "pipa", "truck", "van", "car", "vehicle",
)
GREETINGS = (
    "hola", "buenos dias", "buenas tardes", "buenas noches", "buen dia", "buenas", "que tal", "saludos",
    "que onda", "hi", "hello", "good morning", "hey",
)
CANCEL_WORDS = ("cancelar", "cancela", "cancelo", "cancelalo", "olvidalo", "olvidelo", "dejalo", "cancel")
REPORT_WORDS = ("falla", "fallo", "problema", "reportar", "reporte", "averia", "descompuesto", "report")
FAILURE_WORDS = (
    "no enfria", "no enfriar", "no esta enfriando", "no funciona", "no prende", "no enciende", "no arranca",
    "no jala", "no sirve", "no congela", "no frena", "no cierra", "no abre", "no avanza", "no camina",
    "descompuesto", "descompuesta", "se descompuso", "roto", "rota", "se rompio", "fuga", "gotea", "goteando",
    "tira agua", "ruido", "truena", "llanta", "ponchada", "poncho", "se poncho", "frenos", "bateria",
    "caliente", "se calienta", "se calento", "calentando", "sobrecalienta", "danado", "humo", "se apago", "hielo",
    "sin enfriar", "no hace frio", "no da frio", "no esta frio", "sin frio", "no esta congelando",
    "escarcha", "temperatura", "compresor", "motor", "foco", "luz", "puerta", "aceite", "clutch", "embrague",
    "not cooling", "won't start", "wont start", "doesn't work", "does not work", "broken", "leak", "noise",
    "flat tire", "overheat",
)
# A description that names no failure: asked about once ("¿qué le pasa exactamente?").
VAGUE = {
    "falla", "fallo", "una falla", "tiene falla", "tiene una falla", "problema", "un problema", "tiene problema",
    "no sirve", "no funciona", "esta mal", "anda mal", "descompuesto", "descompuesta", "se descompuso", "mal",
    "algo", "roto", "averia", "reporte", "reportar", "quiero reportar", "broken", "not working",
}
YES = (
    "si", "sip", "sii", "siii", "simon", "claro", "claro que si", "correcto", "afirmativo", "exacto", "asi es",
    "ok", "okay", "okey", "va", "dale", "sale", "eso", "ese", "ese es", "es correcto", "confirmo", "yes", "yep",
    "yeah", "sure", "correct", "confirmar_si", "de acuerdo", "andale", "aja",
)
NO = ("no", "nel", "nop", "nope", "negativo", "incorrecto", "no es", "no es ese", "ese no", "confirmar_no", "nah")
COURTESY = (
    "gracias", "muchas gracias", "mil gracias", "grax", "ok", "okay", "okey", "vale", "perfecto", "excelente",
    "listo", "de nada", "bien", "muy bien", "sale", "va", "entendido", "enterado", "thanks", "thank you",
    "ok gracias", "gracias ok", "buen dia", "saludos",
)
THUMBS = ("👍", "👌", "🙏", "✅", "🙌", "👏", "😊", "🙂", "😀", "👍🏻", "👍🏼", "👍🏽", "👍🏾", "👍🏿")
STATUS_WORDS = (
    "como va mi reporte", "como va el reporte", "como va", "estado de mi reporte", "estado del reporte",
    "mis reportes", "mi reporte", "seguimiento", "ya vienen", "cuando vienen", "cuando van a venir",
    "que paso con mi reporte", "que paso con el reporte", "status", "estatus", "my report", "report status",
)
PERSON_WORDS = (
    "hablar con una persona", "hablar con alguien", "una persona", "un humano", "persona real", "un agente",
    "un asesor", "asesor", "operador", "supervisor", "hablar con mantenimiento", "llamenme", "llamame",
    "human", "real person", "agent",
)
URGENT_WORDS = (
    "humo", "fuego", "incendio", "chispas", "chispa", "choque", "chocamos", "choque", "accidente", "herido",
    "lesionado", "smoke", "fire", "crash",
)
NO_LABEL = (
    "sin etiqueta", "no tiene etiqueta", "no trae etiqueta", "no hay etiqueta", "no encuentro la etiqueta",
    "no tiene codigo", "no trae codigo", "sin codigo", "no se ve el codigo", "no se lee", "no tengo el codigo",
    "no lo encuentro", "no tiene placa de datos", "etiqueta borrada", "no label", "no code",
)
FIXED = (
    "ya prendio", "ya prende", "ya funciona", "ya enfria", "ya quedo", "ya jala", "ya sirve", "ya arranco",
    "ya arranca", "se arreglo", "ya se arreglo", "ya esta bien", "ya no es necesario", "works now",
)
QUESTION_STARTS = ("como ", "cuando ", "donde ", "que ", "cual ", "cuanto ", "por que ", "quien ", "puedo ", "hay ")
_STOP = {
    "es", "la", "el", "los", "las", "de", "del", "mi", "su", "un", "una", "y", "que", "no", "se", "esta", "con",
    "en", "por", "para", "ya", "tiene", "son", "al", "a", "o", "le", "lo", "is", "the", "at", "of",
}


def fold(text: str) -> str:
    """Lower case, no accents, single spaces: `¿Cómo  está?` -> `¿como esta?`."""
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return re.sub(r"\s+", " ", folded).strip()


normalize = fold  # the name the rest of the AI layer knows


def _bare(text: str) -> str:
    """Folded, without punctuation or emoji: what a short answer says."""
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", fold(text))).strip()


def has_phrase(folded: str, words: tuple[str, ...] | set[str]) -> bool:
    return any(re.search(rf"(?<![a-z]){re.escape(w)}(?:s|es)?(?![a-z])", folded) for w in words)


def equipment_type(text: str) -> EquipmentType | None:
    t = fold(text)
    if has_phrase(t, REFRI_WORDS):
        return EquipmentType.REFRIGERADOR
    if has_phrase(t, VEHICLE_WORDS):
        return EquipmentType.VEHICULO
    return None


def only_emoji(text: str) -> bool:
    stripped = text.strip()
    return bool(stripped) and not any(ch.isalnum() for ch in stripped)


def yes_no(text: str) -> str | None:
    """"SI" / "NO" when the message is an answer to a yes/no question ("sip", "nel", 👍, "sí, es ese");
    "no enfría" is a description, not a "no"."""
    if any(t in text for t in THUMBS[:2]) and not any(ch.isalnum() for ch in text):
        return "SI"
    bare = _bare(text)
    if bare in YES:
        return "SI"
    if bare in NO:
        return "NO"
    head = re.split(r"[,.;!]", fold(text), maxsplit=1)[0].strip(" ¡!¿?")
    if head in YES and head != bare:
        return "SI"
    if head in NO and head != bare:
        return "NO"
    return None


def courtesy(text: str) -> bool:
    bare = _bare(text)
    if not bare:
        return any(t in text for t in THUMBS)
    return bare in COURTESY or bool(re.fullmatch(r"(muchas |mil )?gracias( .{0,30})?", bare))


def report_number(text: str) -> str | None:
    match = re.search(r"\b(?:rpt|folio)\s*[-#:]?\s*0*(\d{1,9})\b", fold(text))
    return f"RPT-{int(match.group(1)):06d}" if match else None


_PLATE_TOKEN = re.compile(r"(?<![\w-])([a-z0-9]{1,8}(?:-[a-z0-9]{1,4}){0,3})(?![\w-])")


def _plate_ok(candidate: str) -> bool:
    return (5 <= len(candidate) <= 8 and bool(re.search(r"[A-Z]", candidate))
            and bool(re.search(r"\d", candidate)) and len(re.findall(r"[A-Z]", candidate)) >= 2)


def plate(text: str) -> str | None:
    """A Mexican licence plate ("NXR-4521", "ABC-123-D", "placas abc 123 d"), upper case, no separators."""
    t = fold(text)
    keyed = re.search(r"\bplacas?\b\s*(?:es|son|:|#|no\.?)?\s*((?:[a-z0-9]{1,4}[\s\-]?){1,4})", t)
    if keyed:
        groups = [g for g in re.split(r"[\s\-]+", keyed.group(1)) if g]
        kept: list[str] = []
        for g in groups:
            if g in _STOP or (g.isalpha() and len(g) > 3):
                break
            kept.append(g.upper())
        candidate = "".join(kept)
        if _plate_ok(candidate):
            return candidate
    for match in _PLATE_TOKEN.finditer(t):
        token = match.group(1)
        candidate = token.replace("-", "").upper()
        if token.startswith(("rpt", "sap")) or not _plate_ok(candidate):
            continue
        if "-" in token or re.fullmatch(r"[A-Z]{2,3}\d{3,5}[A-Z]?|\d{2,3}[A-Z]{2,3}\d?", candidate):
            return candidate
    return None


def employee_number(text: str) -> str | None:
    t = fold(text)
    match = re.search(
        r"\b(?:empleado|n(?:o|um|umero)?\.? de empleado|nomina|employee(?: number| id| no)?|mi numero es|"
        r"mi numero|soy el)\s*(?:es|:|#|no\.?|num\.?)?\s*(\d{3,10})\b", t)
    return match.group(1) if match else None


def unit_number(text: str) -> str | None:
    t = fold(text)
    match = re.search(r"\b(?:unidad|economico|eco|camion|camioneta|troca|unit)\s*(?:numero|num\.?|no\.?|#)?\s*"
                      r"(\d{1,6})\b", t)
    return match.group(1) if match else None


def bare_number(text: str) -> str | None:
    """The digits when the message is only a number ("4521", "1000 4512", "# 254")."""
    bare = re.sub(r"[\s\-.#:]", "", fold(text))
    return bare if bare.isdigit() and 1 <= len(bare) <= 12 else None


def sap_code(text: str) -> str | None:
    """An SAP equipment code: 5-10 digits, typed with spaces, dashes or a "sap:" prefix. Employee numbers,
    unit numbers, report numbers and the digits of a plate are not codes."""
    t = fold(text)
    prefixed = re.search(r"\b(?:sap|codigo|cod|code)\s*(?:sap)?\s*(?:es|:|#|no\.?)?\s*(\d[\d\s\-.]{3,14}\d)", t)
    if prefixed:
        digits = re.sub(r"\D", "", prefixed.group(1))
        if 5 <= len(digits) <= 10:
            return digits
    taken = {x for x in (employee_number(text), unit_number(text)) if x}
    masked = re.sub(r"\b(?:rpt|folio)\s*[-#:]?\s*\d+", " ", t)
    masked = re.sub(r"\b(?:tienda|sucursal|store|local)\s*(?:#|no\.?|numero)?\s*\d{1,4}\b", " ", masked)
    for match in re.finditer(r"(?<![\w-])(\d[\d \-]{3,16}\d)(?![\w-])", masked):
        groups = [g for g in re.split(r"[ \-]+", match.group(1)) if g]
        joined = "".join(groups)
        if len(groups) > 1 and len(joined) == 8 and joined not in taken:
            return joined
        for g in groups:
            if 5 <= len(g) <= 10 and g not in taken:
                return g
    return None


def store(text: str) -> str | None:
    """The store or place named: "tienda centro" -> "Tienda Centro", "sucursal 45" -> "Sucursal 45"."""
    t = fold(text)
    match = re.search(r"\b(tienda|sucursal|store|local|cedis|oxxo|super)\s+(?:#|no\.|no(?=\s*\d)|numero)?\s*"
                      r"([a-z0-9]+(?:\s+[a-z0-9]+)?)", t)
    if not match:
        return None
    words: list[str] = []
    for w in match.group(2).split():
        rest = t[match.start(2):][t[match.start(2):].find(w):]
        if w in _STOP or any(rest.startswith(f) for f in FAILURE_WORDS) or w in REFRI_WORDS + VEHICLE_WORDS:
            break
        words.append(w)
    if not words:
        return None
    return " ".join([match.group(1).title(), *(w.title() if not w.isdigit() else w for w in words)])


def _fold_map(text: str) -> tuple[str, list[int]]:
    """`fold` without whitespace collapsing, and each folded character's index in `text`."""
    out, index = [], []
    for i, ch in enumerate(text):
        for c in unicodedata.normalize("NFKD", ch.lower()):
            if not unicodedata.combining(c):
                out.append(c)
                index.append(i)
    return "".join(out), index


def problem(text: str) -> str | None:
    """The failure in the worker's own words, from its first failure phrase to the end of that clause."""
    folded, index = _fold_map(text)
    folded = re.sub(r"\s", " ", folded)
    first = None
    for w in FAILURE_WORDS:
        m = re.search(rf"(?<![a-z]){re.escape(w)}(?:s|es)?(?![a-z])", folded)
        if m and (first is None or m.start() < first):
            first = m.start()
    if first is None:
        return None
    start = index[first]
    # Start at a "ya"/"se"/"le"/"hace" right before the phrase ("ya no enfría", "hace ruido").
    before = text[:start].rstrip()
    lead = re.search(r"(?:\b(?:ya|se|le|hace|tiene|esta|está|sale|salió|salio|tira|mucho|muy|sigue)\s+)+$",
                     before + " ", re.IGNORECASE)
    if lead:
        start = lead.start()
    rest = re.split(r"[.;!?\n]", text[start:], maxsplit=1)[0]
    # Later comma clauses stay only while they still describe the failure ("no enfría, gotea").
    clauses = rest.split(",")
    kept = [clauses[0]]
    for clause in clauses[1:]:
        if not has_phrase(fold(clause), FAILURE_WORDS):
            break
        kept.append(clause)
    phrase = ",".join(kept).strip(" ,.")
    # A code at the end belongs to the equipment, not to the failure ("truena el compresor del refri 10004514").
    phrase = re.sub(r"(?:\s+(?:del?|la|el)\s+\w+)?\s+(?:sap\s*:?\s*)?\d[\d \-]{4,}$", "", phrase, flags=re.I)
    return phrase or None


def is_vague(text: str) -> bool:
    """A description that says nothing: "falla", "no sirve", an emoji, a word."""
    bare = _bare(text)
    if not bare or only_emoji(text):
        return True
    bare = re.sub(r"^(el|la|mi|un|una|the)\s+", "", bare)
    for word in (*REFRI_WORDS, *VEHICLE_WORDS):
        bare = re.sub(rf"(?<![a-z]){re.escape(word)}(?![a-z])", "", bare).strip()
    bare = re.sub(r"\s+", " ", bare).strip()
    return len(bare) < 4 or bare in VAGUE or bare in {"esta " + v for v in VAGUE}


def _intention(t: str, text: str, facts: dict[str, object]) -> Intent:
    if has_phrase(t, CANCEL_WORDS) or re.fullmatch(r"(ya no|no importa|mejor no)[ .!]*", t):
        return Intent.CANCELAR
    if has_phrase(t, PERSON_WORDS):
        return Intent.HABLAR_PERSONA
    if facts["numero_reporte"] or has_phrase(t, STATUS_WORDS):
        if not (facts["tipo_equipo"] and facts["problema"]):
            return Intent.CONSULTA_ESTADO
    if facts["tipo_equipo"] or facts["problema"] or facts["codigo_sap"] or has_phrase(t, REPORT_WORDS):
        return Intent.REPORTAR_FALLA
    if courtesy(text):
        return Intent.CORTESIA
    if any(t.startswith(g) for g in GREETINGS):
        return Intent.SALUDO
    if t.endswith("?") or t.startswith("¿") or t.startswith(QUESTION_STARTS):
        return Intent.PREGUNTA
    return Intent.OTRO


def extract(text: str) -> Extraction:
    """Every fact the text states. `confidence` is high when the text names the equipment."""
    t = fold(text)
    facts: dict[str, object] = {  # the model schema's names: the reason lists the ones found
        "tipo_equipo": equipment_type(text),
        "problema": problem(text),
        "codigo_sap": sap_code(text),
        "numero_reporte": report_number(text),
    }
    intent = _intention(t, text, facts)
    kind = facts["tipo_equipo"]
    found = [name for name, value in facts.items() if value]
    return Extraction(
        intent=intent,
        equipment_type=kind if isinstance(kind, EquipmentType) else None,
        problem=facts["problema"] if isinstance(facts["problema"], str) else None,
        confidence=0.9 if kind else 0.6,
        reason=("reglas offline: " + ", ".join(found)) if found else "reglas offline",
        sap_code=facts["codigo_sap"] if isinstance(facts["codigo_sap"], str) else None,
        store=store(text),
        employee_number=employee_number(text),
        plate=plate(text),
        unit_number=unit_number(text),
        yes_no=yes_no(text),
        report_number=facts["numero_reporte"] if isinstance(facts["numero_reporte"], str) else None,
        no_label=has_phrase(t, NO_LABEL),
        works_again=has_phrase(t, FIXED),
        urgent=has_phrase(t, URGENT_WORDS),
    )
