"""How guessable a new password is: a bundled list of breached passwords, then zxcvbn.

NIST SP 800-63B 5.1.1.2 asks to compare new secrets against breached and commonly used
values, repetitive or sequential characters and context-specific words, and not to impose
composition rules: the list and zxcvbn's estimate (dictionaries, keyboard walks, repeats,
sequences, dates, l33t) together, with the account's own names as context words.

Reasons never quote the password, nor the part of it that matched.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any

# The product's names: a password built on them is guessable by anyone who knows where it is used.
PRODUCT_WORDS = ("nextstat", "nextstat-pro", "nextstatpro", "nextstat pro")
# zxcvbn's matching grows faster than quadratically with the length (72 random characters:
# 0.2 s; 256: 24 s here). A longer password is judged by its first 72 characters, as zxcvbn
# itself limits them: the guesses of a prefix understate the whole, so this only errs strict.
ESTIMATE_CHARS = 72
LIST_FILE = "common-passwords.txt"

# zxcvbn keeps the context words in a module-level dictionary between its calls.
_zxcvbn_lock = threading.Lock()


@cache
def common_passwords() -> frozenset[str]:
    """The bundled list (case-folded); its header states its source."""
    text = resources.files(__package__).joinpath(LIST_FILE).read_text(encoding="utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def context_words(username: str | None, printed_name: str | None, email: str | None) -> list[str]:
    """What a guesser of this account's password tries first: its names and the product's."""
    words: list[str] = list(PRODUCT_WORDS)
    for value in (username, printed_name, email):
        if value:
            words.append(value)
            words.extend(part for part in re.split(r"[\s@._+-]+", value) if len(part) >= 3)
    return words


def weakness(password: str, min_score: int, context: Iterable[str]) -> str | None:
    """Why ``password`` (already NFC-normalised) is too weak, or None when it is strong enough."""
    if password.casefold() in common_passwords():
        return "it is on the list of commonly used passwords found in breaches"
    words = [*PRODUCT_WORDS, *(w for w in context if w)]
    result = _estimate(password[:ESTIMATE_CHARS], words)
    score = int(result["score"])
    if score < min_score:
        return f"{_reason(result)} (strength {score} of 4; this instance requires {min_score})"
    # zxcvbn scores "vera-lynn-vera-lynn" or "veralynn1234" for Vera Lynn at 3: a guesser who
    # knows the account gets its names for free, so what is left without them must be strong too.
    rest = _without(password, words)
    if rest != password.casefold():
        score = int(_estimate(rest[:ESTIMATE_CHARS], words)["score"]) if rest.strip() else 0
        if score < min_score:
            return (f"it is built on your username, name or email address, or on the product's name, and what "
                    f"remains without them is easy to guess (strength {score} of 4; this instance requires "
                    f"{min_score})")
    return None


def _without(password: str, words: list[str]) -> str:
    """``password`` (case-folded) with every context word of three characters or more taken out."""
    rest = password.casefold()
    for word in sorted({w.casefold() for w in words if len(w) >= 3}, key=len, reverse=True):
        rest = rest.replace(word, "")
    return rest


def _estimate(password: str, context: list[str]) -> dict[str, Any]:
    from zxcvbn import zxcvbn  # type: ignore[import-untyped]  # 40 ms to import: only when a password is set

    with _zxcvbn_lock:
        result: dict[str, Any] = zxcvbn(password, user_inputs=context, max_length=ESTIMATE_CHARS)
    return result


def _reason(result: dict[str, Any]) -> str:
    if any(m.get("dictionary_name") == "user_inputs" for m in result["sequence"]):
        return "it is built on your username, name or email address, or on the product's name"
    # zxcvbn's warnings are fixed sentences (e.g. 'Repeats like "aaa" are easy to guess.').
    warning = str(result["feedback"].get("warning") or "").rstrip(".")
    if warning:
        return f"it is easy to guess: {warning[0].lower()}{warning[1:]}"
    return "it is easy to guess; a few uncommon words make a strong password"
