"""docs/cli.md's command reference is the CLI's own: every command, argument and option, as --help has them."""

from __future__ import annotations

from activelab.cli.reference import DOC, END, START, reference


def test_docs_reference_is_up_to_date() -> None:
    documented = DOC.read_text(encoding="utf-8").split(START)[1].split(END)[0].strip()
    assert documented == reference().strip(), (
        "docs/cli.md's reference is stale: run `python -m activelab.cli.reference --write`"
    )


def test_reference_names_every_visible_option_and_no_hidden_one() -> None:
    text = reference()
    for needle in (
        "`--quiet`",
        "### `query`",
        "`-k`, `--k`",
        "`--top`",
        "### `simulate`",
        "`--strategy`",
        "`--out`",
        "### `datasets fetch`",
        "`--json`",
        "`--mode`",
        "`--task`",
        "`--label-sep`",
        "`--class-columns`",
    ):
        assert needle in text, needle
    for hidden in ("`--strategies`", "`--output`", "`--full`", "`--progress`", "`--path`"):
        assert hidden not in text, hidden
