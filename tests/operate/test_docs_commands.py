"""docs/operate/ shows every `pangeohub-admin` command, each as the CLI accepts it."""

from pangeohub.operate.cli import COMMANDS, parser

from .docs_commands import doc_commands


def test_every_command_in_the_docs_is_one_the_cli_accepts():
    shown = doc_commands()
    assert shown
    for words in shown:
        parser().parse_args(words)  # exits (fails the test) on an unknown command or option


def test_every_command_is_shown_in_the_docs():
    assert {words[0] for words in doc_commands()} >= set(COMMANDS)
