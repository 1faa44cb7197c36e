"""Shell completion for ``esiprov``, written from the argparse parser itself: ``esiprov completion bash|zsh``.

Generated rather than kept by hand, so a new command or option completes the
day it is added; and plain shell, so completion costs no dependency and no
Python start per keystroke (argcomplete would run esiprov on every TAB). It
completes commands, subcommands, options and fixed choices; resource types and
ids would need etcd, and are left to the operator.
"""
from __future__ import annotations

import argparse
from typing import Iterator

SHELLS = ("bash", "zsh")


def command_words(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, list[str]]]:
    """(command path, the words that may follow it) for ``parser`` and every subcommand below it."""
    words: list[str] = []
    below: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            words += list(action.choices)
            below += [(f"{path} {name}", sub) for name, sub in action.choices.items()]
        else:
            words += list(action.option_strings)
            if not action.option_strings and action.choices:
                words += [str(choice) for choice in action.choices]
    yield path, words
    for sub_path, sub in below:
        yield from command_words(sub, sub_path)


def bash_script(parser: argparse.ArgumentParser) -> str:
    """A bash completion function: it follows the command words typed so far, then offers what may come next."""
    prog = parser.prog
    tree = dict(command_words(parser, prog))
    steps = "|".join(f'"{path}"' for path in tree if path != prog)
    cases = "\n".join(f'        "{path}") words="{" ".join(words)}" ;;' for path, words in tree.items())
    function = f"_{prog}_complete"
    return f"""# {prog} completion for bash: eval "$({prog} completion bash)" (e.g. in ~/.bashrc)
{function}() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" path="{prog}" words="" i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "$path ${{COMP_WORDS[i]}}" in
            {steps}) path="$path ${{COMP_WORDS[i]}}" ;;
        esac
    done
    case "$path" in
{cases}
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -F {function} {prog}
"""


def zsh_script(parser: argparse.ArgumentParser) -> str:
    """The bash function through zsh's bashcompinit, which runs bash completion functions as they are."""
    prog = parser.prog
    return (f'# {prog} completion for zsh: eval "$({prog} completion zsh)" (e.g. in ~/.zshrc)\n'
            "(( $+functions[compdef] )) || { autoload -U +X compinit && compinit; }\n"
            "autoload -U +X bashcompinit && bashcompinit\n"
            + bash_script(parser).split("\n", 1)[1])


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    return bash_script(parser) if shell == "bash" else zsh_script(parser)
