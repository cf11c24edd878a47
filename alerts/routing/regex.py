"""Routing regular expressions (``=~`` / ``!~`` matchers): RE2 syntax, as in Alertmanager, matched in linear time.

:func:`compile_regex` is called by ``Matcher.parse`` when a routing file loads (notifier start,
``preempt routes check/test``, ``preempt alerts preview``), for routes, inhibit rules and silences.
Alertmanager compiles ``^(?:pattern)$`` with Go's regexp, whose syntax is RE2's; RE2 (``google-re2``)
never backtracks, so matching takes time linear in the value and no pattern can stall the notifier —
Python's ``re`` ran ``(a|ab)+c`` on ``"ab" * 30`` for minutes. What RE2 cannot express (look-arounds,
backreferences, possessive repeats, atomic groups, conditionals…) is refused with one line naming the
construct and what to write instead; so is ``{,n}``, a repeat to Python's ``re`` but literal text to RE2.
"""

from __future__ import annotations

import re

import re2

# RE2 prints every pattern it refuses to stderr unless told not to; the refusal is ours to word.
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False

_UNSUPPORTED = "which RE2 — the regex syntax Alertmanager uses — does not support"
_LOOKAROUND = 'match the value itself, or add a !~ matcher on the same name (!~"test-.*" for =~"(?!test-).*")'
_BACKREFERENCE = "write out the values it stands for ((ab|cd)-(ab|cd), or ab-ab|cd-cd for (ab|cd)-\\1)"
_NO_BACKTRACKING = "RE2 never backtracks, so it needs none"

# RE2's "invalid perl operator" fragment → (what it is, what to write instead).
_GROUPS: dict[str, tuple[str, str]] = {
    "(?=": ("a look-ahead `(?=`", _LOOKAROUND),
    "(?!": ("a negative look-ahead `(?!`", _LOOKAROUND),
    "(?<=": ("a look-behind `(?<=`", _LOOKAROUND),
    "(?<!": ("a negative look-behind `(?<!`", _LOOKAROUND),
    "(?>": ("an atomic group `(?>`", f"write a plain group `(?:…)`; {_NO_BACKTRACKING}"),
    "(?(": ("a conditional `(?(`", "write the alternatives with `|`"),
    "(?#": ("a comment `(?#`", "remove it (a YAML comment can say the same)"),
    "(?|": ("a branch-reset group `(?|`", "write a plain group `(?:…)`"),
    "(?'": ("a named group `(?'name'…)`", "write `(?P<name>…)`"),
}
# Escapes RE2 has but refuses in some places (a class as a range end: `[a-\d]`): a plain syntax error.
_KNOWN_ESCAPES = frozenset("dDsSwWbBpP")
# `x{,3}` / `x{,}`: Python's re reads "0 to 3 times" / "any number of times", RE2 and Go read the
# characters; refused rather than silently flipped.
_EMPTY_MINIMUM = re.compile(r"\{,(\d*)\}")
_FLAGS = frozenset("imsU")
# Only a lone UTF-16 surrogate cannot be UTF-8 (json.loads lets "\ud800" through, pydantic's JSON does not).
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class AnchoredRegex:
    """A compiled routing regex; :meth:`fullmatch` tests the whole value, like Alertmanager's ``^(?:…)$``."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        try:
            self._compiled = re2.compile(pattern, _OPTIONS)
        except re2.error as exc:
            raise ValueError(_refusal(pattern, _text(exc))) from None

    def fullmatch(self, value: str) -> bool:
        """True when the whole of ``value`` matches (time linear in its length, whatever the pattern)."""
        try:
            encoded = value.encode()
        except UnicodeEncodeError:
            # What Go (Alertmanager) reads for a lone surrogate: U+FFFD.
            encoded = _LONE_SURROGATE.sub("\ufffd", value).encode()
        return self._compiled.fullmatch(encoded) is not None


def compile_regex(pattern: str) -> AnchoredRegex:
    """Compile a matcher's regex, or raise ``ValueError`` with the rest of a sentence saying what is wrong.

    The message reads after "regular expression in matcher '…'": "uses a look-ahead `(?=`, which RE2 — the
    regex syntax Alertmanager uses — does not support: …", or "is not valid: missing ) at `(a`".
    """
    if _LONE_SURROGATE.search(pattern):
        raise ValueError("holds a lone UTF-16 surrogate (an escape like \\ud800), which is not a character")
    empty = _unescaped_empty_minimum(pattern)
    if empty is not None:
        text, most = empty
        repeat = f"`{{0,{most}}}`" if most else "`*`"
        raise ValueError(
            f"uses `{text}`, which RE2 — the regex syntax Alertmanager uses — reads as the text `{text}` "
            f"(Python's re read it as a repeat): write {repeat} for the repeat, or `\\{text}` for the text"
        )
    return AnchoredRegex(pattern)


def _text(exc: re2.error) -> str:
    # google-re2 raises its error with RE2's message as bytes: b"missing ): (a".
    arg = exc.args[0] if exc.args else ""
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)


def _refusal(pattern: str, message: str) -> str:
    """RE2's ``"<what>: <fragment>"`` error as the end of a sentence about the matcher's regex."""
    code, _, fragment = message.partition(": ")
    construct = _construct(code, fragment, pattern)
    if construct is not None:
        what, instead = construct
        return f"uses {what}, {_UNSUPPORTED}: {instead}"
    if code == "invalid repetition size":
        return (
            f"has a repeat count RE2 refuses at `{fragment}`: at most 1000 (nested counts multiply: "
            "(a{100}){100} is 10,000), and {m,n} needs m ≤ n"
        )
    if code == "pattern too large - compile failed":
        return (
            "is too large for RE2 (its compiled program passes 8 MiB): use smaller repeat counts or fewer alternatives"
        )
    where = f" at `{fragment}`" if fragment else ""
    return f"is not valid: {code}{where} (RE2 syntax, as in Alertmanager)"


def _construct(code: str, fragment: str, pattern: str) -> tuple[str, str] | None:
    """(what, what to write instead) when RE2 refused a construct of Perl/Python regexes, else None."""
    if code == "invalid perl operator":
        if fragment in _GROUPS:
            return _GROUPS[fragment]
        if fragment == "(?P" and "(?P=" in pattern:
            return "a backreference `(?P=name)`", _BACKREFERENCE
        if (fragment == "(?P" and "(?P>" in pattern) or fragment == "(?R" or fragment[2:3].isdigit():
            shown = "(?P>name)" if fragment == "(?P" else fragment
            return f"a recursion `{shown}`", "write out the nesting it should match (RE2 has no recursion)"
        flag = fragment[-1:]
        # "(?x", "(?ia"; not "(?i" (unclosed) nor "(?P" (a malformed named group)
        if fragment.startswith("(?") and flag.isalpha() and flag not in _FLAGS and fragment != "(?P":
            return f"the inline flag `{flag}` (in `{fragment}`)", "RE2 has only the flags i, m, s and U: remove it"
    elif code == "invalid escape sequence" and len(fragment) == 2:
        letter = fragment[1]
        if letter.isdigit() or letter in "kg":
            return f"a backreference `{fragment}`", _BACKREFERENCE
        if letter == "Z":
            return (
                "the end anchor `\\Z`",
                "remove it, as a matcher's regex is anchored at both ends already (RE2's end of text is `\\z`)",
            )
        if letter not in _KNOWN_ESCAPES:
            return f"the escape `{fragment}`", "write the character itself, or `\\x{…}` with its code point"
    elif code == "bad repetition operator" and len(fragment) > 1 and fragment.endswith("+"):
        return f"a possessive repeat `{fragment}`", f"drop the last `+` (`a+` for `a++`); {_NO_BACKTRACKING}"
    return None


def _unescaped_empty_minimum(pattern: str) -> tuple[str, str] | None:
    """The first ``{,n}`` outside a character class, an escape and ``\\Q…\\E``, as (text, n); else None."""
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if pattern.startswith("\\Q", i):  # literal up to \E (or the end)
                end = pattern.find("\\E", i + 2)
                i = len(pattern) if end < 0 else end + 2
            else:
                i += 2
            continue
        if in_class:
            if pattern.startswith("[:", i):  # [[:alpha:]]: the ']' of ':]' does not close the class
                end = pattern.find(":]", i + 2)
                i = i + 1 if end < 0 else end + 2
                continue
            in_class = char != "]"
        elif char == "[":
            in_class = True
            i += 1
            i += pattern.startswith("^", i)
            i += pattern.startswith("]", i)  # '[]a]' and '[^]a]': the first ']' is a member
            continue
        elif char == "{":
            found = _EMPTY_MINIMUM.match(pattern, i)
            if found is not None:
                return found[0], found[1]
        i += 1
    return None
