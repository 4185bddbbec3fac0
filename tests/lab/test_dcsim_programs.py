"""The simulator's cmd.exe: what reg, repadmin and shutdown do with a command line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.windows.commands import RemoteCommand
from bot.windows.output import CommandOutput, WindowsCommandError
from bot.windows.repadmin import parse_repadmin_add, parse_showrepl
from lab.dcsim.programs import ProgramResult, run_command_line, split_command_line
from lab.dcsim.repadmin_backend import InMemoryRepadmin
from lab.dcsim.state import Forest, RegistryValue

KEY = r'"HKLM\SYSTEM\CurrentControlSet\Services\NTDS\Parameters"'


def _forest() -> Forest:
    forest = Forest("corp.example.com")
    for name in ("dc1", "dc2"):
        forest.add_dc(f"{name}.corp.example.com")
    forest.connect_all()
    return forest


def _run(forest: Forest, line: str, dc: str = "dc1.corp.example.com") -> ProgramResult:
    state = forest.dc(dc)
    assert state is not None
    return run_command_line(line, state, forest, InMemoryRepadmin(forest, local_dc=dc))


_ARG = st.text(
    alphabet=st.characters(
        whitelist_categories=("Lu", "Ll", "Nd"), whitelist_characters=" ()-\\/."
    ),
    min_size=1,
    max_size=30,
).filter(lambda s: not s.endswith("\\"))


@given(st.lists(_ARG, min_size=1, max_size=8))
def test_quoted_arguments_split_back_to_the_originals(args: list[str]) -> None:
    command = RemoteCommand("reg.exe", tuple(args), "property test")
    assert split_command_line(command.command_line())[1:] == args


def test_windows_quote_and_backslash_rules() -> None:
    assert split_command_line(r'a "b c" d\\"e f"') == ["a", "b c", "d\\e f"]
    assert split_command_line(r'x \"y\" "z\\\"w"') == ["x", '"y"', 'z\\"w']
    assert split_command_line('  spaced   out  ""') == ["spaced", "out", ""]


def test_other_programs_are_not_recognized_by_cmd() -> None:
    result = _run(_forest(), "powershell.exe -c Remove-Item C:\\")
    assert result.exit_code == 1
    assert result.stderr.startswith("'powershell.exe' is not recognized as an internal")


def test_unsplit_value_name_is_a_syntax_error_not_a_write() -> None:
    forest = _forest()
    result = _run(forest, f"reg.exe add {KEY} /v RepsTo Failure Time (sec) /t REG_DWORD /d 60 /f")
    assert result.exit_code == 1 and "Invalid syntax" in result.stderr
    assert forest.dcs["dc1.corp.example.com"].registry == {}


def test_reg_add_without_force_does_not_overwrite() -> None:
    forest = _forest()
    dc = forest.dcs["dc1.corp.example.com"]
    dc.set_registry_value(RegistryValue("Replicator Allow SPN Fallback", "REG_DWORD", 0))
    result = _run(forest, f'reg add {KEY} /v "Replicator Allow SPN Fallback" /t REG_DWORD /d 1')
    assert result.exit_code == 1
    assert dc.registry_value("Replicator Allow SPN Fallback").data == 0  # type: ignore[union-attr]


def test_reg_only_writes_the_ntds_parameters_key() -> None:
    forest = _forest()
    result = _run(forest, r'reg add "HKLM\SOFTWARE\Evil" /v x /t REG_DWORD /d 1 /f')
    assert result.exit_code == 1 and "Access is denied" in result.stderr


def test_repadmin_add_from_an_unknown_dc_fails_with_8524() -> None:
    forest = _forest()
    result = _run(
        forest,
        "repadmin /add CN=Configuration,DC=corp,DC=example,DC=com dc1.corp.example.com "
        "dc7.corp.example.com",
    )
    assert result.exit_code == 8524
    with pytest.raises(WindowsCommandError) as failure:
        parse_repadmin_add(_output(result))
    assert failure.value.code == 8524


def test_repadmin_against_an_unknown_dc_is_rpc_unavailable() -> None:
    result = _run(_forest(), "repadmin /options dc9.corp.example.com +DISABLE_NTDSCONN_XLATE")
    assert result.exit_code == 1722 and "RPC server is unavailable" in result.stdout


def test_kcc_can_prune_manual_links() -> None:
    forest = _forest()
    forest.dcs["dc1.corp.example.com"].inbound.clear()
    forest.dcs["dc1.corp.example.com"].kcc_prunes_manual_links = True
    nc = "CN=Configuration,DC=corp,DC=example,DC=com"
    _run(forest, f"repadmin /add {nc} dc1.corp.example.com dc2.corp.example.com")
    assert len(parse_showrepl(_output(_run(forest, "repadmin /showrepl"))).inbound) == 1
    _run(forest, "repadmin /kcc")
    assert parse_showrepl(_output(_run(forest, "repadmin /showrepl"))).inbound == ()


def test_shutdown_needs_r_and_schedules_a_restart() -> None:
    forest = _forest()
    assert _run(forest, "shutdown /s /t 0").restart is False
    result = _run(forest, 'shutdown.exe /r /t 30 /d p:2:4 /c "planned"')
    assert result.exit_code == 0 and result.restart is True and result.stdout == ""


def _output(result: ProgramResult) -> CommandOutput:
    return CommandOutput(result.stdout, result.stderr, result.exit_code)
