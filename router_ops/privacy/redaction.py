"""PII and secret redaction of free text. Pure: no Django imports.

`redact(text, rules)` replaces what the rules find with `[REDACTED:<rule>]` and
returns the new text with a count per rule. The built-in rules are one combined
regular expression (one pass over the text, whatever the number of rules); the
per-application custom patterns are compiled with RE2, whose matching time is
linear in the text (a user-supplied pattern cannot cause catastrophic
backtracking on the ingestion hot path).

Built-in rules, in the order they win when two could match at the same place:

- `api_key`: provider and platform tokens (sk-…, ro_…, GitHub, Slack, AWS,
  Google, JWTs, `Bearer …`);
- `email`;
- `secret`: long hexadecimal runs (≥ 32) and base64-like runs (≥ 40, with
  upper, lower case and digits: random material, not words);
- `card`: 13–19 digits, optionally grouped by spaces or dashes, that pass the
  Luhn check (so most order numbers and timestamps are left alone);
- `phone`: international (+cc …, 8–15 digits), North-American (555) 123-4567 /
  555-123-4567, and trunk-prefixed national numbers (020 7946 0958);
- `secret`: long hexadecimal runs (≥ 32) and base64-like runs (≥ 40, with
  upper, lower case and digits: random material, not words).

Every quantifier is bounded, so even Python's backtracking engine stays
linear-time on these patterns: a match attempt at one position looks at a
bounded number of characters.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

import re2

BUILTIN_RULES = ("api_key", "email", "card", "phone", "secret")
MAX_CUSTOM_PATTERNS = 20
MAX_PATTERN_LENGTH = 500
# RE2 program memory per custom pattern; a pattern needing more is refused on save.
RE2_MAX_MEM = 1 << 20
CUSTOM_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")

_API_KEY = "|".join(
    (
        r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,200}",
        r"\bro_[0-9a-f]{8}_[A-Za-z0-9_-]{16,200}",
        r"\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{20,255}",
        r"\bxox[abprs]-[A-Za-z0-9-]{10,200}",
        r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
        r"\bAIza[0-9A-Za-z_-]{35}",
        r"\beyJ[A-Za-z0-9_-]{8,2000}\.[A-Za-z0-9_-]{8,2000}\.[A-Za-z0-9_-]{8,2000}",
        r"(?i:\bbearer)\s{1,5}[A-Za-z0-9._~+/-]{20,500}=*",
    )
)
_EMAIL = r"\b[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}\b"
# Not the digits of a decimal number ("6.666666666666667" is Luhn-valid by chance).
_CARD = r"(?<![\d.,-])\d(?:[ -]?\d){12,18}(?![\d-]|[.,]\d)"
_PHONE = "|".join(
    (
        r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,4}){2,6}(?![\w])",
        r"(?<![\w(])(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\w)",
        r"(?<![\w+])0\d{1,4}[ -]\d{3,4}[ -]?\d{3,4}(?!\w)",
    )
)
_SECRET = r"(?<![A-Za-z0-9])[0-9a-fA-F]{32,4096}(?![A-Za-z0-9])|(?<![A-Za-z0-9+_-])[A-Za-z0-9+_-]{40,4096}={0,2}"  # noqa: S105 - a pattern that finds secrets, not one

_RULE_PATTERNS = {"api_key": _API_KEY, "email": _EMAIL, "secret": _SECRET, "card": _CARD, "phone": _PHONE}

# Cheap tests that rule a rule out before the combined pattern runs: most text has
# no "@", no long token and no run of 8 digits, and then costs a few scans in C.
_API_KEY_LITERALS = ("sk-", "ro_", "gh", "xox", "AKIA", "ASIA", "AIza", "eyJ", "earer", "EARER")
_LONG_TOKEN = re.compile(r"[A-Za-z0-9+_-]{32}")
_EIGHT_DIGITS = re.compile(r"\d(?:[ ().+-]{0,2}\d){7}")


def _possible_rules(text: str) -> set[str]:
    possible = set()
    if any(literal in text for literal in _API_KEY_LITERALS):
        possible.add("api_key")
    if "@" in text:
        possible.add("email")
    if _LONG_TOKEN.search(text):
        possible.add("secret")
    if _EIGHT_DIGITS.search(text):
        possible.update(("card", "phone"))
    return possible


@functools.lru_cache(maxsize=64)
def _combined(rules: frozenset[str]) -> re.Pattern:
    """One alternation of the given rules, in priority order (the first that matches at a position wins)."""
    return re.compile("|".join(f"(?P<{rule}>{_RULE_PATTERNS[rule]})" for rule in _RULE_PATTERNS if rule in rules))


_NOT_DIGIT = re.compile(r"\D")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _looks_random(token: str) -> bool:
    """Base64-like material has upper case, lower case and digits; long words do not."""
    return any(c.isdigit() for c in token) and any(c.isupper() for c in token) and any(c.islower() for c in token)


def _builtin_verdict(match: re.Match) -> str | None:
    """The rule a match of the combined pattern belongs to, or None to leave it as it is."""
    rule = match.lastgroup
    text = match.group()
    if rule == "card":
        digits = _NOT_DIGIT.sub("", text)
        return "card" if 13 <= len(digits) <= 19 and luhn_valid(digits) else None
    if rule == "phone":
        digits = _NOT_DIGIT.sub("", text)
        return "phone" if 8 <= len(digits) <= 15 else None
    if rule == "secret":
        stripped = text.rstrip("=")
        is_hex = all(c in "0123456789abcdefABCDEF" for c in stripped)
        return "secret" if is_hex or _looks_random(stripped) else None
    return rule


def placeholder(rule: str) -> str:
    return f"[REDACTED:{rule}]"


@dataclass(frozen=True)
class CustomPattern:
    name: str
    regex: object  # a compiled re2 pattern


@dataclass(frozen=True)
class RedactionRules:
    """What to redact: a subset of the built-in rules plus custom RE2 patterns."""

    builtin: frozenset[str] = frozenset(BUILTIN_RULES)
    custom: tuple[CustomPattern, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.builtin and not self.custom


DEFAULT_RULES = RedactionRules()
NO_RULES = RedactionRules(builtin=frozenset(), custom=())


def custom_pattern_compile(pattern: str) -> object:
    """Compile a custom pattern with RE2, or raise ValueError saying why it is refused."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("A pattern must be a non-empty string.")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"A pattern may have at most {MAX_PATTERN_LENGTH} characters.")
    options = re2.Options()
    options.log_errors = False
    options.max_mem = RE2_MAX_MEM
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as exc:
        message = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(
            f"Not a valid pattern: {message}. Patterns use RE2 syntax (no backreferences or lookaround)."
        ) from None
    if compiled.search("") is not None:
        raise ValueError("A pattern must not match the empty string.")
    return compiled


def custom_patterns_validate(patterns: object) -> dict[str, str]:
    """Errors by pattern position ("0", "1", …) for a list of {"name", "pattern"}; empty if valid."""
    if not isinstance(patterns, list):
        return {"patterns": "Must be a list of {name, pattern} objects."}
    if len(patterns) > MAX_CUSTOM_PATTERNS:
        return {"patterns": f"At most {MAX_CUSTOM_PATTERNS} custom patterns."}
    errors: dict[str, str] = {}
    names: set[str] = set()
    for position, entry in enumerate(patterns):
        key = str(position)
        if not isinstance(entry, dict) or set(entry) != {"name", "pattern"}:
            errors[key] = "Must be an object with exactly 'name' and 'pattern'."
            continue
        name = entry["name"]
        if not isinstance(name, str) or not CUSTOM_NAME.fullmatch(name):
            errors[key] = "The name must be lowercase letters, digits or _ (at most 32), starting with a letter."
            continue
        if name in names or name in BUILTIN_RULES:
            errors[key] = f"The name {name!r} is already used."
            continue
        names.add(name)
        try:
            custom_pattern_compile(entry["pattern"])
        except ValueError as exc:
            errors[key] = str(exc)
    return errors


def rules_build(*, builtin: Iterable[str], custom: Iterable[dict]) -> RedactionRules:
    """Rules from stored settings (already validated on save)."""
    return RedactionRules(
        builtin=frozenset(rule for rule in builtin if rule in BUILTIN_RULES),
        custom=tuple(CustomPattern(entry["name"], custom_pattern_compile(entry["pattern"])) for entry in custom),
    )


def redact(text: str, rules: RedactionRules = DEFAULT_RULES) -> tuple[str, dict[str, int]]:
    """Return (redacted text, {rule: replacements}). Counts only rules that replaced something."""
    counts: dict[str, int] = {}
    if not text or rules.empty:
        return text, counts
    candidates = rules.builtin & _possible_rules(text) if rules.builtin else None
    if candidates:
        enabled = rules.builtin

        def replace(match: re.Match) -> str:
            rule = _builtin_verdict(match)
            if rule is None or rule not in enabled:
                return match.group()
            counts[rule] = counts.get(rule, 0) + 1
            return placeholder(rule)

        text = _combined(frozenset(candidates)).sub(replace, text)
    for custom in rules.custom:
        text, replaced = custom.regex.subn(placeholder(custom.name).replace("\\", "\\\\"), text)
        if replaced:
            counts[custom.name] = counts.get(custom.name, 0) + replaced
    return text, counts


def redact_json(value: object, rules: RedactionRules, counts: dict[str, int]) -> object:
    """A copy of a JSON value with every string inside it redacted (keys are kept)."""
    if isinstance(value, str):
        text, found = redact(value, rules)
        for rule, number in found.items():
            counts[rule] = counts.get(rule, 0) + number
        return text
    if isinstance(value, list):
        return [redact_json(item, rules, counts) for item in value]
    if isinstance(value, dict):
        return {key: redact_json(item, rules, counts) for key, item in value.items()}
    return value
