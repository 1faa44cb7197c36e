"""The esiprov command's surface, in-process: help everywhere, usage errors, one-line errors."""
from __future__ import annotations

import argparse
import importlib.metadata
import re
import subprocess

import pytest

from esiprov import cli, output, settings
from esiprov.devenv.process import free_port


def _parsers(parser: argparse.ArgumentParser, path: str = "esiprov"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_command_and_every_option_has_help_text():
    for path, parser in _parsers(cli.build_parser()):
        assert parser.description, path
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{path} {action.dest}"


def test_every_listing_offers_json():
    for path in ("templates list", "jobs list", "jobs show", "state show", "state list", "status", "plan", "resync"):
        parsers = dict(_parsers(cli.build_parser()))
        assert any(a.dest == "json" for a in parsers[f"esiprov {path}"]._actions), path


@pytest.fixture
def unreachable_etcd(monkeypatch):
    """Settings that point at a loopback port nobody listens on."""
    monkeypatch.setenv("ESIPROV_ETCD_ENDPOINTS", f"127.0.0.1:{free_port()}")
    monkeypatch.setattr(settings, "_current", None)


@pytest.mark.parametrize("args", [["jobs", "requeue"], ["jobs", "requeue", "--type", "t", "x"],
                                  ["jobs", "requeue", "--failed", "x"]])
def test_requeue_needs_job_ids_or_failed_and_says_so_with_exit_2_before_connecting(args, unreachable_etcd, capsys):
    assert cli.main(args) == cli.EXIT_USAGE
    assert capsys.readouterr().err == "esiprov: give JOB_ID... or --failed [--type TYPE]\n"


@pytest.mark.parametrize("args", [[], ["jobs"], ["state", "show", "ese_device"], ["jobs", "list", "--nope"]])
def test_argparse_usage_errors_exit_2(args, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(args)
    assert stopped.value.code == 2


@pytest.mark.parametrize("args", [["templates", "load"], ["templates", "list"], ["templates", "show", "x"],
                                  ["plan", "ese_device", "x"], ["jobs", "list"], ["jobs", "show", "x"],
                                  ["jobs", "requeue", "x"], ["state", "show", "ese_device", "x"], ["resync"],
                                  ["state", "list"], ["jobs", "list", "--watch"], ["state", "show", "--watch", "t", "x"]])
def test_every_command_says_in_one_line_when_etcd_is_unreachable(args, unreachable_etcd, capsys):
    assert cli.main(args) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("esiprov: etcd at 127.0.0.1:") and err.count("\n") == 1, err


def test_ages_read_in_the_largest_whole_unit():
    assert [output.age(s) for s in (None, 5, 65, 7200, 90000)] == ["", "5s", "1m", "2h", "1d"]


def test_templates_load_lists_every_problem_on_its_own_line_before_asking_etcd(tmp_path, unreachable_etcd, capsys):
    (tmp_path / "schema.yaml").write_text("template_mappings: {heat_worker: {thing: Cthing_new}}\n")
    (tmp_path / "thing_new.yaml").write_text(
        "id: thing_new\nhandler: heat_worker\nparameter_mappings: {ghost: Pname, other: Zbad}\n"
        "template_file: |\n  heat_template_version: 2013-05-23\n  resources: {}\n")
    assert cli.main(["templates", "load", str(tmp_path)]) == cli.EXIT_FAILED
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("esiprov: ") and "nothing was written" in lines[0]
    assert any("thing_new parameter ghost" in line for line in lines[1:])
    assert any("thing_new parameter other" in line and "unknown operator 'Z'" in line for line in lines[1:])


def _leaves() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every command that runs something (not a group of subcommands)."""
    return [(path, parser) for path, parser in _parsers(cli.build_parser())
            if path != "esiprov" and not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)]


def test_every_command_shows_an_example_of_itself_in_its_help():
    for path, parser in _leaves():
        _, found, examples = parser.format_help().partition("\nexample:\n")
        assert found and all(line.startswith("  ") for line in examples.splitlines()), path
        assert re.search(rf"(^|\W){path}( |$)", examples, re.M), (path, examples)


@pytest.mark.parametrize("args", [["--version"], ["jobs", "list", "--version"], ["state", "show", "--version"]])
def test_version_is_the_installed_package_version_wherever_it_is_asked(args, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(args)
    assert stopped.value.code == 0
    assert capsys.readouterr().out == f"esiprov {importlib.metadata.version('esiprov')}\n"


@pytest.mark.parametrize("args", [["-v", "jobs", "list"], ["jobs", "-v", "list"], ["jobs", "list", "-v"],
                                  ["jobs", "list", "--verbose", "--failed"]])
def test_verbose_is_taken_before_or_after_the_subcommand(args):
    assert cli.build_parser().parse_args(args).verbose is True


def test_verbose_is_off_unless_given():
    assert cli.build_parser().parse_args(["jobs", "list"]).verbose is False


def test_completion_bash_completes_commands_subcommands_options_and_choices_in_a_real_bash(capsys, tmp_path):
    assert cli.main(["completion", "bash"]) == cli.EXIT_OK
    script = tmp_path / "esiprov.bash"
    script.write_text(capsys.readouterr().out)

    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in words)
        command = (f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
                   '_esiprov_complete; printf "%s\\n" "${COMPREPLY[@]}"')
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True)
        return done.stdout.split()

    assert complete("esiprov", "st") == ["status", "state"]
    assert complete("esiprov", "state", "") == ["-h", "--help", "-v", "--verbose", "--version", "list", "show"]
    assert "--wait" in complete("esiprov", "-v", "jobs", "requeue", "--w")
    assert complete("esiprov", "completion", "z") == ["zsh"]


def test_completion_zsh_runs_the_bash_function_through_bashcompinit(capsys):
    assert cli.main(["completion", "zsh"]) == cli.EXIT_OK
    script = capsys.readouterr().out
    assert "bashcompinit" in script and "complete -F _esiprov_complete esiprov" in script
