"""The bounded sandbox: range() steps and output counted per rendering, range() otherwise as Jinja's."""

from __future__ import annotations

import pytest

from schemas.template_sandbox import MAX_OUTPUT_CHARS, MAX_RANGE_STEPS, BoundedSandbox, TemplateLimitError

NESTED = "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}done"


def _render(source: str) -> str:
    return BoundedSandbox().from_string(source).render()


def test_nested_loops_stop_at_the_range_steps_of_one_rendering():
    """Nested loops multiply: 1,000 × 1,000 steps of range() (each range well under MAX_RANGE) stop the
    rendering with TemplateLimitError instead of running 10^6 steps (10^10 for two range(100000))."""
    with pytest.raises(TemplateLimitError, match=f"{MAX_RANGE_STEPS:,} steps of range"):
        _render(NESTED)


def test_a_range_reused_in_nested_loops_is_counted_at_every_step():
    """One range set once and looped over inside itself counts every item of every pass."""
    with pytest.raises(TemplateLimitError):
        _render("{% set r = range(1000) %}{% for a in r %}{% for b in r|reverse %}{% endfor %}{% endfor %}")


def test_the_steps_are_per_rendering():
    """Each rendering gets its own steps: a template that stays under them renders again and again."""
    template = BoundedSandbox().from_string("{% for a in range(60000) %}{% endfor %}ok")
    assert [template.render() for _ in range(3)] == ["ok", "ok", "ok"]


def test_output_stops_at_the_character_limit():
    """A loop printing more than MAX_OUTPUT_CHARS characters stops with TemplateLimitError."""
    with pytest.raises(TemplateLimitError, match="characters of output"):
        _render("{% for a in range(1001) %}{{ 'x' * 1000 }}{% endfor %}")
    assert len(_render("{% for a in range(1000) %}{{ 'x' * 1000 }}{% endfor %}")) == MAX_OUTPUT_CHARS


def test_range_still_reads_as_a_range():
    """Lists, lengths, slices, reversal, membership, loop.length and Jinja's MAX_RANGE are unchanged."""
    source = "{{ range(3)|list }} {{ range(5)|length }} {{ range(10)[2:4]|list }} {{ range(3)|reverse|join }}"
    assert _render(source) == "[0, 1, 2] 5 [2, 3] 210"
    assert _render("{{ 2 in range(3) }} {{ range(4)|last }} {% for i in range(2) %}{{ loop.length }}{% endfor %}") == (
        "True 3 22"
    )
    with pytest.raises(OverflowError, match="MAX_RANGE"):
        _render("{{ range(100001)|length }}")


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ 'x' * 10**9 }}", "a repeated value"),
        ("{{ 10**9 * 'x' }}", "a repeated value"),
        ("{{ [0] * 10**8 }}", "a repeated value"),
        ("{{ 10 ** 1000000 }}", "a power of more than"),
        ("{{ 'a'|center(10**9) }}", "a centred value"),
    ],
)
def test_one_value_cannot_outgrow_the_limits(source: str, message: str):
    """A single expression that would build a gigabyte string, a million-digit number or a huge centring
    is refused before Python builds it (without the check each takes seconds to minutes and GBs)."""
    with pytest.raises(TemplateLimitError, match=message):
        _render(source)


def test_ordinary_arithmetic_and_repetition_still_work():
    """Products, powers and centring of ordinary sizes render as Python computes them."""
    assert _render("{{ 2 * 3 }} {{ 'ab' * 3 }} {{ 2 ** 10 }} {{ 1.5 * 2 }} {{ 'x'|center(5) }}|") == (
        "6 ababab 1024 3.0   x  |"
    )
    assert len(_render("{{ 2 ** 4000 }}")) == 1205
