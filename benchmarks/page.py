"""The benchmark's page, docs/benchmarks.md: each section's figures in a block between two markers, which
``--write PAGE`` replaces with what the section measured; the rest of the page is left as written."""

import re
from pathlib import Path

from linear_pl.runner.errors import UsageError


def markers(section: str) -> tuple[str, str]:
    return f"<!-- benchmarks: {section} -->", f"<!-- /benchmarks: {section} -->"


def _block(section: str) -> re.Pattern:
    start, end = (re.escape(marker) for marker in markers(section))
    return re.compile(f"(?<={start}\n).*?(?={end})", re.DOTALL)


def check_page(path: Path, sections: list[str]) -> None:
    """One line, before anything is measured, where the page cannot take the sections' figures."""
    try:
        text = path.read_text()
    except OSError as error:
        raise UsageError(f"--write {path}: cannot read it ({error.strerror})") from None
    for section in sections:
        if len(_block(section).findall(text)) != 1:
            start, end = markers(section)
            raise UsageError(f"--write {path}: expected one {start} ... {end} block for section {section}")


def write_page(path: Path, figures: dict[str, list[str]]) -> None:
    """Replace each section's block with its figures (lines), as a ```text block."""
    text = path.read_text()
    for section, lines in figures.items():
        block = _block(section).search(text)
        text = text[: block.start()] + "\n".join(["```text", *lines, "```", ""]) + text[block.end() :]
    path.write_text(text)
