"""The bounded sandbox: loop steps, work, value sizes and output bounded per rendering; the rest as Jinja's."""

from __future__ import annotations

import inspect

import pytest
from jinja2.compiler import CodeGenerator
from jinja2.sandbox import ImmutableSandboxedEnvironment

from schemas import template_sandbox
from schemas.template_sandbox import (
    MAX_LOOP_STEPS,
    MAX_OUTPUT_CHARS,
    MAX_WORK_CHARS,
    BoundedSandbox,
    TemplateLimitError,
)

NESTED = "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}done"


def _render(source: str) -> str:
    return BoundedSandbox().from_string(source).render()


def test_nested_loops_stop_at_the_loop_steps_of_one_rendering():
    """Nested loops multiply: 1,000 × 1,000 steps of range() (each range well under MAX_RANGE) stop the
    rendering with TemplateLimitError instead of running 10^6 steps (10^10 for two range(100000))."""
    with pytest.raises(TemplateLimitError, match=f"{MAX_LOOP_STEPS:,} loop steps"):
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


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "source",
    [
        "{% for a in 'x' * 3000 %}{% for b in 'x' * 3000 %}{% endfor %}{% endfor %}",
        "{% for a in 'x' * 100000 %}{% for b in 'x' * 100000 %}{% endfor %}{% endfor %}",
        "{% set l = [0] * 1000 %}{% for a in l %}{% for b in l %}{% endfor %}{% endfor %}",
        "{% for a in 'x' * 1000000 if a == 'y' %}{% endfor %}",
        "{% for a in range(1000) %}{% for b in (range(1000)|list)|reverse %}{% endfor %}{% endfor %}",
        "{% set t = range(10)|list %}{% for x in t recursive %}{% if loop.depth < 8 %}{{ loop(t) }}{% endif %}"
        "{% endfor %}",
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(30) }}",
    ],
    ids=["strings", "big-strings", "lists", "filtered", "reversed-list", "recursive", "macro-fan-out"],
)
def test_every_loop_counts_whatever_it_goes_over(source: str):
    """Loops over strings, lists, filtered loops, recursive loops and macros calling themselves all count
    against the same steps (before, only range() counted: 'x' * 100000 nested ran ~5 minutes, the
    macro 2^30 calls for hours)."""
    with pytest.raises(TemplateLimitError, match=f"{MAX_LOOP_STEPS:,} loop steps"):
        _render(source)


@pytest.mark.timeout(10)
def test_membership_index_and_count_of_a_range_are_not_steps():
    """``in``, ``.index`` and ``.count`` of a range are answered by the range, not by walking it (before,
    each walked and counted up to 100,000 items, and two in one rendering raised)."""
    source = "{{ 99999 in range(100000) }} {{ 99999 in range(100000) }} {{ range(100000).index(99999) }} "
    source += "{{ range(100000).count(5) }}{% for i in range(99990) %}{% endfor %}"
    assert _render(source) == "True True 99999 1"


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ '%2000000s' % 'x' }}", "a formatted value"),
        ("{{ '%*s' % (2000000000, 'x') }}", "a formatted value"),
        ("{{ '%.2000000f' % 1.5 }}", "a formatted value"),
        ("{{ '%2000000s'|format('x') }}", "a formatted value"),
        ("{{ '{:>1000000000}'.format('x') }}", "a formatted value"),
        ("{{ '{:{}}'.format('x', 1000000000) }}", "a formatted value"),
        ("{{ '{a:>1000000000}'.format_map({'a': 'x'}) }}", "a formatted value"),
        ("{{ range(10)|join('y' * 999999) }}", "a joined value"),
        ("{{ ('y' * 999999).join(range(10)|map('string')) }}", "a joined value"),
        ("{{ ('x' * 10)|replace('', 'y' * 999999) }}", "a replaced value"),
        ("{{ ('x' * 10).replace('', 'y' * 999999) }}", "the result of .replace()"),
        ("{{ 'a\nb'|indent(2000000) }}", "an indented value"),
        ("{{ ('a ' * 400000)|wordwrap(1, wrapstring='yyyy') }}", "a wrapped value"),
        ("{{ ('x' * 499999)|wordwrap(1) }}", "wrapping a word that long"),
        ("{{ 'x'.ljust(10**9) }}", "the result of .ljust()"),
        ("{{ 'x'.rjust(10**9) }}", "the result of .rjust()"),
        ("{{ 'x'.center(10**9) }}", "the result of .center()"),
        ("{{ 'x'.zfill(10**9) }}", "the result of .zfill()"),
        ("{{ ('\t' * 10).expandtabs(10**8) }}", "the result of .expandtabs()"),
        ("{{ ('x' * 1000).translate({120: 'y' * 10000}) }}", "the result of .translate()"),
        ("{{ lipsum(100000) }}", "lipsum()"),
        ("{{ range(10)|batch(10**9, 0)|list }}", "a batch of more than"),
        ("{{ range(1)|slice(10**8)|list }}", "a slice into parts of more than"),
        ("{{ 'x' * 600000 + 'x' * 600000 }}", "a sum"),
        ("{{ 'x' * 600000 ~ 'x' * 600000 }}", "a value"),
        ("{{ [[0] * 1000] * 2000 }}", "a repeated value"),
        ("{{ ([[0] * 10] * 30000)|sum(start=[])|length }}", "adding 30,000 sequences"),
        ("{{ 3 ** 2500 * 3 ** 2500 }}", "a product of more than"),
    ],
)
def test_one_expression_cannot_build_past_the_limits(source: str, message: str):
    """Formatting widths, joins, replacements, indentation, wrapping, padding str methods, lipsum, batches,
    slices, sums and products that would outgrow MAX_OUTPUT_CHARS (or MAX_NUMBER_BITS) are refused
    before Python builds them (before, each built up to gigabytes: seconds, or a MemoryError)."""
    with pytest.raises(TemplateLimitError, match=message):
        _render(source)


def test_str_internals_stay_out_of_reach():
    """``'x'.__mul__`` and friends are refused by Jinja's sandbox (names starting with _), so they cannot
    go around the checks of ``*``."""
    with pytest.raises(Exception, match=r"unsafe|undefined"):
        _render("{{ 'x'.__mul__(10**9) }}")


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "a value would be more",
        ),
        (
            "{% set ns = namespace(l=[0]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
            "a sum would be more",
        ),
        (
            "{% set ns = namespace(l=[0]) %}{% for i in range(40) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}"
            "{{ ns.l }}",
            "a value would be more",
        ),
        (
            "{% set ns = namespace(n=3) %}{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}{% endfor %}",
            "a product of more than",
        ),
        ("{% set a = [0] * 10 %}" + "".join(f"{{% set a = [{', '.join(['a'] * 10)}] %}}" for _ in range(8)), "a value"),
    ],
    ids=["string-doubling", "list-doubling", "list-nesting", "number-squaring", "nested-literals"],
)
def test_a_value_grown_in_a_loop_stops_at_the_limits(source: str, message: str):
    """A namespace doubling a string or list, nesting a list in itself, or squaring a number in a loop,
    and literals nesting a list 10^9 deep, stop at the size limits (before: MemoryError after seconds,
    or hours)."""
    with pytest.raises(TemplateLimitError, match=message):
        _render(source)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "source",
    [
        "{% set s = 'x' * 1000000 %}{% for i in range(100000) %}{{ (s|upper)|length }}{% endfor %}",
        "{% set s = 'x' * 1000000 %}{% for i in range(100000) %}{{ s.count('y') }}{% endfor %}",
        "{% set s = 'x' * 1000000 %}{% set t = 'x' * 1000000 %}{% for i in range(100000) %}"
        "{% if s == t %}{% endif %}{% endfor %}",
        "{% set l = [0] * 300000 %}{% for i in range(100000) %}{% if 1 in l %}{% endif %}{% endfor %}",
        "{% set s = 'x' * 1000000 %}{% for i in range(100000) %}{{ s[1:]|length }}{% endfor %}",
        "{% set s = 'x' * 100000 %}{% set out %}{% for i in range(100000) %}{{ s }}{% endfor %}{% endset %}",
    ],
    ids=["filter", "method", "comparison", "membership", "slice", "captured-block"],
)
def test_a_big_value_reused_in_a_loop_stops_at_the_work_limit(source: str):
    """Each step may be small, but 10^5 steps over a 10^6-character value are 10^11: operators, filters,
    calls, comparisons, slices and captured blocks count what they read and make (before: minutes, or a
    100 GB block)."""
    with pytest.raises(TemplateLimitError, match=f"{MAX_WORK_CHARS:,} characters of work|captured block"):
        _render(source)


ORDINARY = [
    "{{ '%s has %d seats (%.1f%%)' % ('Acme', 12, 42.5) }} {{ '%5s|%-5s|' % ('a', 'b') }}",
    "{{ '%s, %s!'|format('Hello', 'World') }} {{ '{} {:>5} {:.2f}'.format('a', 'b', 3.14159) }}",
    "{{ '{name}!'.format_map({'name': 'Acme'}) }} {{ '{0:{1}}|'.format('x', 4) }}",
    "{{ ['a', 'b', 'c']|join(', ') }} {{ ', '.join(['x', 'y']) }} {{ range(5)|join }}",
    "{{ 'a-b-c'|replace('-', ' ') }} {{ 'abc'.replace('b', 'B') }} {{ 'x'|replace('', '.') }}",
    "{{ 'a\nb'|indent(2, first=True) }} {{ 'one two three four'|wordwrap(9) }} {{ 'long text here'|truncate(9) }}",
    "{{ 'x'.ljust(4) }}|{{ 'x'.rjust(4) }}|{{ 'x'.center(5) }}|{{ '7'.zfill(3) }}|{{ 'a\tb'.expandtabs(4) }}|",
    "{{ 'ab'.translate({97: 'AA'}) }} {{ 'x'|center(7) }} {{ range(7)|batch(3, 0)|list }} {{ range(7)|slice(3)|list }}",
    "{{ [1, 2] + [3] }} {{ 'a' + 'b' }} {{ 'a' ~ 1 ~ none }} {{ 2 * 21 }} {{ 2 ** 10 }} {{ 7 % 3 }} {{ 'ab' * 3 }}",
    "{{ 'hello'[1:3] }} {{ [1, 2, 3][::-1] }} {{ (1, 2) }} {{ {'a': 1}['a'] }} {{ 'b' in 'abc' }} {{ 1 < 2 < 3 }}",
    "{% for i in range(3) %}{{ loop.index }}/{{ loop.length }}{{ loop.cycle('a', 'b') }}"
    "{% if not loop.last %},{% endif %}{% else %}none{% endfor %}",
    "{% for k, v in {'a': 1, 'b': 2}|dictsort %}{{ k }}={{ v }};{% endfor %}"
    "{% for x in [] %}{% else %}empty{% endfor %}",
    "{% for x in [[1, [2]], [3]] recursive %}[{% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}{% endif %}]"
    "{% endfor %}",
    "{% macro m(x, y='!') %}<{{ x }}{{ y }}{{ caller() if caller }}>{% endmacro %}{{ m(1) }}"
    "{% call m(2) %}inner{% endcall %}",
    "{% set ns = namespace(total=0, names=[]) %}{% for i in range(5) %}{% set ns.total = ns.total + i %}"
    "{% set ns.names = ns.names + [i|string] %}{% endfor %}{{ ns.total }} {{ ns.names|join('') }}",
    "{% set block %}a{{ 1 + 1 }}b{% endset %}{{ block }} {% filter upper %}shout {{ 'it' }}{% endfilter %}",
    "{{ [[1], [2, 3]]|sum(start=[]) }} {{ [1, 2, 3]|sum }} {{ range(10)|select('odd')|list }} "
    "{{ ['b', 'a']|sort|first }} {{ {'b': 1}|items|list }} {{ none is none }}",
    "{{ 'Ünïcode'|upper }} {{ 'x,y'.split(',') }} {{ '  pad '|trim }} {{ 12345.678|round(1) }} {{ -3|abs }}",
]


@pytest.mark.parametrize("source", ORDINARY)
def test_ordinary_templates_render_as_in_jinjas_sandbox(source: str):
    """Formatting, joins, replacements, padding, loops (filtered, recursive, with else), macros and
    call blocks, namespaces, captured blocks, slices, literals and comparisons of ordinary sizes render
    exactly as in Jinja's own immutable sandbox."""
    assert _render(source) == ImmutableSandboxedEnvironment().from_string(source).render()


def test_a_template_near_the_limits_still_renders():
    """A value just under MAX_OUTPUT_CHARS built once and a loop just under MAX_LOOP_STEPS render."""
    assert len(_render("{{ '%999990s' % 'x' }}")) == 999_990
    assert _render("{% for a in 'x' * 99999 %}{% endfor %}{{ range(10)|join('y' * 99999)|length }}") == "900001"


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("source", "message"),
    [
        # ranges and dict views are walked by |sum, |max and `in` (a non-int is looked for item by item)
        ("{% for i in range(100000) %}{{ range(100000)|sum }}{% endfor %}", "characters of work"),
        ("{% for i in range(100000) %}{{ 0.5 in range(100000) }}{% endfor %}", "characters of work"),
        ("{% set k = {}.fromkeys(range(100000)).keys() %}{% for i in range(1000) %}{{ k|sum }}{% endfor %}", "work"),
        ("{{ 1|round(-10000000) }}", "a rounding precision"),  # builds 10**10000000
        ("{{ ([0]*10000)|tojson(99999) }}", "a JSON indent"),  # 2 GB before its size was known
        ("{{ 'x'|center(499990)|replace(' ', 'x ')|urlize|length }}", "a text to find links in"),
    ],
)
def test_walking_ranges_rounding_json_and_links_stay_bounded(source: str, message: str):
    """What the first limits missed (each took seconds to minutes, or gigabytes, on the old code)."""
    with pytest.raises(TemplateLimitError, match=message):
        _render(source)


def test_constant_expressions_are_not_evaluated_while_compiling():
    """Jinja's optimizer folded constant expressions at compile time, outside any budget: compiling is
    now cheap whatever the template, and the work is counted when it renders."""
    import time

    started = time.monotonic()
    template = BoundedSandbox().from_string("{{ 'x'|center(499990)|replace(' ', 'x ')|urlize|length }}" * 3)
    assert time.monotonic() - started < 0.5
    with pytest.raises(TemplateLimitError):
        template.render()


def test_ordinary_ranges_rounding_json_and_links_render_as_before():
    assert _render("{{ 3.14159|round(2) }} {{ 5 in range(10) }} {{ range(10)|sum }} {{ [1]|tojson(2) }}") == (
        "3.14 True 45 [\n  1\n]"
    )
    assert _render("{% for i in range(60000) %}{% endfor %}{{ 'see https://x.io'|urlize }}").startswith(
        'see <a href="https://x.io"'
    )


def test_every_code_generator_override_still_overrides_jinja():
    """The sandbox's code generator overrides methods of Jinja's (two of them private): each must still exist upstream
    with the same parameters, or the override is never called and its bound is silently off."""
    ours = template_sandbox._BoundedCodeGenerator
    overrides = [name for name, value in vars(ours).items() if callable(value) and name not in {"__init__", "_made"}]
    assert "_output_child_pre" in overrides
    assert "visit_For" in overrides
    for name in overrides:
        assert hasattr(CodeGenerator, name), f"jinja2's CodeGenerator has no {name} any more"
        upstream = list(inspect.signature(getattr(CodeGenerator, name)).parameters)
        mine = list(inspect.signature(inspect.unwrap(getattr(ours, name))).parameters)
        assert mine == upstream or mine[-2:] == ["args", "kwargs"], (name, mine, upstream)
