"""Fill README.md's generated parts: the feature sections from docs/<feature>.md and the
command-line reference from the ``atelier`` argument parser.

    python tools/readme.py          # rewrite README.md
    python tools/readme.py --check  # exit 1 if README.md is out of date (a test runs this)
"""

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FEATURE_DOCS = ("nca", "sketch", "strokes", "stylize", "scale")


def feature_sections():
    """The docs pages, one level deeper under the README's headings, with image links from the root."""
    sections = []
    for name in FEATURE_DOCS:
        page = ROOT / "docs" / f"{name}.md"
        if page.exists():
            text = page.read_text(encoding="utf-8").strip()
            sections.append(re.sub(r"\]\((images/)", r"](docs/\1", text))
    return "\n\n".join(sections)


def _subparsers(parser):
    return next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))


def cli_reference():
    """Every ``atelier GROUP COMMAND``: its one-line help and its usage, as argparse prints them."""
    from core.cli import GROUPS, build_parser
    groups = _subparsers(build_parser())
    lines = []
    for group in GROUPS:
        group_parser = groups.choices[group]
        lines += [f"### `atelier {group}`: {group_parser.description}", ""]
        helps = {action.dest: action.help for action in _subparsers(group_parser)._choices_actions}
        for command, parser in _subparsers(group_parser).choices.items():
            usage = parser.format_usage().replace("usage: ", "").replace(" [-h]", "").strip()
            lines += [f"* **{command}**: {helps.get(command) or ''}", "", "  ```", "  " + re.sub(r"\s+", " ", usage),
                      "  ```", ""]
    return "\n".join(lines).strip()


def fill(text, marker, body):
    start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if start not in text:
        raise SystemExit(f"README.md: marker {start} is missing")
    if end not in text:  # first run: the marker stood alone
        return text.replace(start, f"{start}\n{body}\n{end}")
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text, count=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether README.md is up to date")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    old = readme.read_text(encoding="utf-8")
    new = fill(fill(old, "FEATURES", feature_sections()), "CLI", cli_reference())
    if args.check:
        if new != old:
            print("README.md is out of date: run python tools/readme.py", file=sys.stderr)
            return 1
        return 0
    if new != old:
        from core.atomic import write_text_atomic
        write_text_atomic(readme, new)
        print("README.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
