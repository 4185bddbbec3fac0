"""Property: deleting or altering the success line of any accepted success output never yields
success. The procedure decides "done" from these lines, so a near miss must read as a failure.

Success outputs come from the samples and from the DC simulator's renderer; alterations touch
only the fixed wording of the line (a different DC name in the line is a different success,
not an alteration), and the published spellings of one line (`source:X` and `source: X`) count
as the same line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bot.windows.output import CommandOutput, UnrecognizedOutput, WindowsCommandError, lines_of
from bot.windows.reg import REG_SUCCESS, parse_reg_add, parse_reg_delete
from bot.windows.repadmin import (
    AddLinkOutcome,
    parse_repadmin_options,
    parse_replsummary,
    parse_showrepl,
    read_repadmin_add,
    read_repadmin_kcc,
)
from lab.dcsim.render import (
    render_reg_add,
    render_repadmin_add,
    render_repadmin_kcc,
    render_repadmin_options,
)

SAMPLES = Path(__file__).parent / "outputs"
_KCC_LINE = re.compile(r"^Consistency check on (?P<v1>\S+) successful\.$")
_ADD_LINE = re.compile(
    r"^One-way replication from source: ?(?P<v1>\S+) to dest: ?(?P<v2>\S+) established\.$"
)
_ATTEMPT_OK = re.compile(r"^        Last attempt @ (?P<v1>.+) was successful\.$")
_REG_LINE = re.compile("^" + re.escape(REG_SUCCESS) + "$")
# The option names are what the change did (another list is another reading); the wording
# around them is the success line.
_NEW_OPTIONS = re.compile(r"^New DSA Options: (?P<v1>\S.*)$")
_SUMMARY_HEADER = re.compile(r"^(Source|Destination) DSA\s+largest delta\s+fails/total %%\s+error$")
XLATE = "DISABLE_NTDSCONN_XLATE"


def _kcc_success(text: str) -> bool:
    return read_repadmin_kcc(CommandOutput(text, "", 0)).ok


def _add_success(text: str) -> bool:
    outcome = read_repadmin_add(CommandOutput(text, "", 0)).outcome
    return outcome in (AddLinkOutcome.ADDED, AddLinkOutcome.ALREADY_EXISTS)


def _reg_success(text: str) -> bool:
    parse_reg_add(CommandOutput(text, "", 0))
    return parse_reg_delete(CommandOutput(text, "", 0))


def _options_changed(option: str, wanted: bool) -> Callable[[str], bool]:
    """Success of `repadmin /options DC +OPTION` (wanted) or `-OPTION` (not wanted): the
    options in force after the command, as the step runner reads them."""

    def check(text: str) -> bool:
        return (option in parse_repadmin_options(CommandOutput(text, "", 0)).effective) == wanted

    return check


def _replsummary_healthy(text: str) -> bool:
    return parse_replsummary(CommandOutput(text, "", 0)).healthy


@dataclass(frozen=True)
class SuccessOutput:
    """An output the parsers accept as success, and where its success line is."""

    name: str
    text: str
    line: int  # index of the success line in lines_of(text)
    pattern: re.Pattern[str]
    succeeded: Callable[[str], bool]


def _found(
    name: str, text: str, pattern: re.Pattern[str], check: Callable[[str], bool]
) -> list[SuccessOutput]:
    lines = lines_of(text)
    return [
        SuccessOutput(name, text, i, pattern, check)
        for i, line in enumerate(lines)
        if pattern.match(line.rstrip())
    ]


def _sample(name: str) -> str:
    return (SAMPLES / name).read_bytes().decode("utf-8")


def _all_neighbors_ok(count: int) -> Callable[[str], bool]:
    """Success of a /showrepl: it parses and its `count` inbound links all read as ok."""

    def check(text: str) -> bool:
        report = parse_showrepl(CommandOutput(text, "", 0))
        return len(report.inbound) == count and all(n.ok for n in report.inbound)

    return check


def _fixed_outputs() -> list[SuccessOutput]:
    found: list[SuccessOutput] = []
    for name in (
        "repadmin_kcc_local.stdout.txt",
        "repadmin_kcc_remote.stdout.txt",
        "repadmin_kcc_site_options.stdout.txt",
        "repadmin_kcc_w2003.stdout.txt",
    ):
        found += _found(name, _sample(name), _KCC_LINE, _kcc_success)
    for name in ("repadmin_add_success.stdout.txt", "repadmin_add_success_spaced.stdout.txt"):
        found += _found(name, _sample(name), _ADD_LINE, _add_success)
    found += _found(
        "reg_success.stdout.txt", _sample("reg_success.stdout.txt"), _REG_LINE, _reg_success
    )
    for name, option, wanted in (
        ("repadmin_options_disable_xlate.stdout.txt", XLATE, True),
        ("repadmin_options_enable_xlate.stdout.txt", XLATE, False),
        ("repadmin_options_to_none.stdout.txt", "DISABLE_INBOUND_REPL", False),
    ):
        found += _found(name, _sample(name), _NEW_OPTIONS, _options_changed(option, wanted))
    name = "replsummary_healthy.stdout.txt"
    found += _found(name, _sample(name), _SUMMARY_HEADER, _replsummary_healthy)
    for name in ("showrepl_healthy.stdout.txt", "showrepl_new_link.stdout.txt"):
        text = _sample(name)
        count = len(parse_showrepl(CommandOutput(text, "", 0)).inbound)
        found += _found(name, text, _ATTEMPT_OK, _all_neighbors_ok(count))
    return found


FIXED = _fixed_outputs()

hosts = st.from_regex(r"\A[a-z0-9]{1,8}(\.[a-z0-9]{1,8}){0,3}\Z")
sites = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9-]{0,24}\Z")


@st.composite
def rendered_outputs(draw: st.DrawFn) -> SuccessOutput:
    kind = draw(st.sampled_from(["kcc", "add", "reg", "options"]))
    if kind == "kcc":
        dc = draw(st.none() | hosts)
        text = render_repadmin_kcc(dc, site=draw(sites)).stdout
        return _found("kcc", text, _KCC_LINE, _kcc_success)[0]
    if kind == "add":
        text = render_repadmin_add("CN=Configuration,DC=x", draw(hosts), draw(hosts)).stdout
        return _found("add", text, _ADD_LINE, _add_success)[0]
    if kind == "options":
        # A change that changes something (a no-op reads as done with or without its line).
        others = draw(st.sets(st.sampled_from(["IS_GC", "DISABLE_INBOUND_REPL"])))
        wanted = draw(st.booleans())
        before, after = (others, others | {XLATE}) if wanted else (others | {XLATE}, others)
        text = render_repadmin_options(before, after).stdout
        return _found("options", text, _NEW_OPTIONS, _options_changed(XLATE, wanted))[0]
    return _found("reg", render_reg_add().stdout, _REG_LINE, _reg_success)[0]


def _variable_positions(out: SuccessOutput) -> set[int]:
    """Positions of the success line that belong to a name or a time, not to its wording."""
    line = lines_of(out.text)[out.line]
    match = out.pattern.match(line.rstrip())
    assert match is not None
    variable: set[int] = set()
    for group in match.groupdict():
        start, end = match.span(group)
        variable |= set(range(start, end))
    return variable


def _same_spelling(a: str, b: str) -> bool:
    """`source:X` and `source: X` are one line (both spellings are published); so are
    `New DSA Options:` and `New DSA options:`, a `Key: value` line spaced differently around
    its colon (`Options:IS_GC`: the parsers read key and value stripped), and /replsummary
    headers spaced differently (repadmin pads its columns)."""
    if re.sub(r"(source|dest): ", r"\1:", a) == re.sub(r"(source|dest): ", r"\1:", b):
        return True
    if a.split() == b.split() and "DSA" in b and "largest delta" in b:
        return True
    key_a, sep_a, rest_a = a.partition(":")
    key_b, sep_b, rest_b = b.partition(":")
    return (
        bool(sep_a and sep_b)
        and key_a.strip().lower() == key_b.strip().lower()
        and rest_a.strip() == rest_b.strip()
    )


def _with_line(out: SuccessOutput, new_line: str | None) -> str:
    eol = "\r\n" if "\r\n" in out.text else "\n"
    lines = lines_of(out.text)
    if new_line is None:
        del lines[out.line]
    else:
        lines[out.line] = new_line
    return eol.join(lines)


def _never_success(out: SuccessOutput, text: str) -> None:
    try:
        succeeded = out.succeeded(text)
    except (UnrecognizedOutput, WindowsCommandError):
        return  # refused: the wanted outcome
    assert not succeeded, f"{out.name}: altered output read as success:\n{text}"


def test_every_fixed_output_really_is_a_success() -> None:
    assert len(FIXED) >= 17
    for out in FIXED:
        assert out.succeeded(out.text), out.name


@pytest.mark.parametrize("out", FIXED, ids=[f"{o.name}:{o.line}" for o in FIXED])
def test_deleting_the_success_line_is_never_success(out: SuccessOutput) -> None:
    _never_success(out, _with_line(out, None))


mutation = st.tuples(
    st.sampled_from(["replace", "insert", "delete", "truncate", "swapcase"]),
    st.integers(0, 10_000),
    # A line break makes two lines of one: blank lines around an intact success line are not
    # an alteration of it (lines are altered within themselves here).
    st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\r\n"),
)


def _mutate(out: SuccessOutput, how: str, at: int, ch: str) -> str:
    line = lines_of(out.text)[out.line]
    variable = _variable_positions(out)
    literal = [i for i in range(len(line)) if i not in variable]
    pos = literal[at % len(literal)]
    if how == "truncate":
        cut = at % len(line)
        # A list that ends the line (DSA options) cut short is another list, not an alteration
        # of the wording; cut to nothing it is one.
        ends_line = bool(variable) and max(variable) == len(line.rstrip()) - 1
        assume(not (ends_line and min(variable) < cut))
        return line[:cut]
    if how == "replace":
        assume(ch != line[pos])
        # A letter in place of the (optional) space before a name lengthens the name.
        assume(line[pos] != " " or ch.isspace() or not {pos - 1, pos + 1} & variable)
        return line[:pos] + ch + line[pos + 1 :]
    if how == "insert":
        # Right after a name, a letter lengthens the name: another DC, not an alteration.
        assume(pos - 1 not in variable or ch.isspace())
        return line[:pos] + ch + line[pos:]
    if how == "delete":
        return line[:pos] + line[pos + 1 :]
    assume(line[pos].swapcase() != line[pos])
    return line[:pos] + line[pos].swapcase() + line[pos + 1 :]


@given(st.sampled_from(FIXED) | rendered_outputs(), mutation)
def test_altering_the_success_line_is_never_success(
    out: SuccessOutput, change: tuple[str, int, str]
) -> None:
    original = lines_of(out.text)[out.line]
    altered = _mutate(out, *change)
    # Trailing blanks are not part of a line (Windows pads some); the two published
    # spellings of the /add line are one line.
    assume(altered.rstrip() != original.rstrip() and not _same_spelling(altered, original))
    _never_success(out, _with_line(out, altered))


@given(st.sampled_from(FIXED) | rendered_outputs())
def test_deleting_the_success_line_of_rendered_output_is_never_success(out: SuccessOutput) -> None:
    _never_success(out, _with_line(out, None))
