"""The docs hold together: every relative link of README.md and docs/*.md reaches a file, every `#anchor` a heading,
every page is in mkdocs.yml's nav, and every config under recipes/configs/ is in a table of the docs (with its
launch command). Plain Python on the Markdown text: no MkDocs needed, no model.

Anchors follow both slug rules a reader meets: GitHub's (README and docs read on the forge) and MkDocs' (the `toc`
extension of Python-Markdown: the site `make docs` builds). A link counts only when both rules produce its anchor.
"""

import re
import unicodedata
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parent.parent  # not vlm_recipes.paths: this test imports nothing of the package
DOCS = REPO_ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
CONFIGS = sorted((REPO_ROOT / "recipes" / "configs").rglob("*.yaml"))

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`).+?(?<!`)\1(?!`)", re.S)  # maximal backtick runs, as CommonMark
LINK = re.compile(r"(?<!\\)!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)


def prose(text: str) -> str:
    """The text with fenced code blocks and code spans blanked: a link inside code is not a link."""
    text = FENCE.sub("", text)
    return CODE_SPAN.sub("", text)


def heading_text(raw: str) -> str:
    """A heading as rendered: code spans keep their text, links keep their label, emphasis marks go."""
    raw = re.sub(r"`+([^`]*)`+", r"\1", raw)
    raw = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    return re.sub(r"[*_]{1,3}([^*_]+)[*_]{1,3}", r"\1", raw).strip()


def github_slug(text: str) -> str:
    """GitHub: lower case, every character but letters, digits, spaces, '-' and '_' dropped, each space a '-'."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def mkdocs_slug(text: str) -> str:
    """Python-Markdown's toc.slugify (MkDocs' default): ASCII only, punctuation dropped, runs of spaces/'-' one '-'."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(text: str) -> set[str]:
    """The anchors of a page's headings that both GitHub and MkDocs generate (repeats numbered their own ways)."""
    seen_github: dict[str, int] = {}
    seen_mkdocs: dict[str, int] = {}
    github, mkdocs = set(), set()
    for match in HEADING.finditer(FENCE.sub("", text)):
        title = heading_text(match.group(2))
        slug = github_slug(title)
        n = seen_github.get(slug, 0)
        github.add(slug if n == 0 else f"{slug}-{n}")
        seen_github[slug] = n + 1
        slug = mkdocs_slug(title)
        n = seen_mkdocs.get(slug, 0)
        mkdocs.add(slug if n == 0 else f"{slug}_{n}")
        seen_mkdocs[slug] = n + 1
    return github & mkdocs


def broken_links(page: Path, docs_dir: Path = DOCS) -> list[str]:
    """What is wrong with the relative links of `page`: a missing file, a missing anchor, or (for a docs page) a
    target outside `docs_dir`, which MkDocs cannot serve (name such a file in a code span instead)."""
    problems = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page.resolve()
        if not dest.exists():
            problems.append(f"{page.name}: link {target!r}: no file {dest}")
            continue
        if page.resolve().is_relative_to(docs_dir.resolve()) and not dest.is_relative_to(docs_dir.resolve()):
            problems.append(f"{page.name}: link {target!r} leaves docs/ (MkDocs cannot serve it): use a code span")
            continue
        if dest.is_dir():
            if anchor:
                problems.append(f"{page.name}: link {target!r}: an anchor on a folder")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            problems.append(f"{page.name}: link {target!r}: {dest.name} has no heading with the anchor #{anchor}")
    return problems


def nav_pages(mkdocs_yml: Path) -> list[str]:
    """Every page named in the nav of `mkdocs_yml`, in order."""

    def walk(entry):
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, list):
            for item in entry:
                yield from walk(item)
        elif isinstance(entry, dict):
            for value in entry.values():
                yield from walk(value)

    return list(walk(yaml.safe_load(mkdocs_yml.read_text())["nav"]))


def nav_problems(docs_dir: Path, mkdocs_yml: Path) -> list[str]:
    nav = nav_pages(mkdocs_yml)
    pages = {p.relative_to(docs_dir).as_posix() for p in docs_dir.rglob("*.md")}
    return [f"{p}: not in the nav of {mkdocs_yml.name}" for p in sorted(pages - set(nav))] + [
        f"{p}: in the nav of {mkdocs_yml.name}, but no such page" for p in nav if p not in pages
    ]


def table_rows(pages: list[Path]) -> str:
    return "\n".join(line for page in pages for line in page.read_text().splitlines() if line.lstrip().startswith("|"))


def configs_missing_from_tables(configs: list[Path], pages: list[Path], root: Path = REPO_ROOT) -> list[str]:
    """The configs whose path (`recipes/configs/<model>/<name>.yaml`) is in no table row of `pages`."""
    rows = table_rows(pages)
    return [p.relative_to(root).as_posix() for p in configs if p.relative_to(root).as_posix() not in rows]


# -- the repository's docs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", [REPO_ROOT / "README.md", *PAGES], ids=lambda p: p.name)
def test_relative_links_reach_a_file_and_a_heading(page):
    assert broken_links(page) == []


def test_every_page_is_in_the_nav():
    assert PAGES, "no docs pages"
    assert nav_problems(DOCS, REPO_ROOT / "mkdocs.yml") == []


def test_every_config_is_in_a_docs_table():
    assert len(CONFIGS) > 50
    assert configs_missing_from_tables(CONFIGS, PAGES) == []


def test_readme_stays_the_front_door():
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 250
    assert "make demo" in readme and "make test" in readme


# -- the checks themselves fail on broken docs ------------------------------------------------------------------------

GOOD = """# Title

## Padding-free, packed (SFT)

## What is loaded, and how

## Notes

## Notes

```bash
# not a heading, and [not a link](nowhere.md)
```

[here](#padding-free-packed-sft) [there](other.md#what-is-loaded-and-how) [once](#notes) `[code](nowhere.md)`
[site](https://example.org/missing) [image](img.png)
"""


@pytest.fixture
def site(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(GOOD)
    (docs / "other.md").write_text(GOOD)
    (docs / "img.png").write_bytes(b"")
    (tmp_path / "outside.txt").write_text("")
    return docs


def test_a_good_page_passes(site):
    assert broken_links(site / "index.md", site) == []


@pytest.mark.parametrize(
    "link, why",
    [
        ("[a](missing.md)", "no file"),
        ("[a](other.md#no-such-heading)", "no heading with the anchor #no-such-heading"),
        ("[a](#padding-free--packed-sft)", "no heading with the anchor"),  # GitHub's rule alone would keep '--'
        ("[a](#notes_1)", "no heading with the anchor"),  # a repeated heading: MkDocs numbers it so, GitHub -1,
        ("[a](#notes-1)", "no heading with the anchor"),  # so no link to it works in both
        ("![a](images/missing.png)", "no file"),
        ("[a](../outside.txt)", "leaves docs/"),
        ("text with ```json inline, `code` and [a](missing.md)", "no file"),  # an unmatched run opens no code span
    ],
)
def test_a_broken_link_is_reported(site, link, why):
    (site / "index.md").write_text(GOOD + link + "\n")
    problems = broken_links(site / "index.md", site)
    assert len(problems) == 1 and why in problems[0], problems


def test_a_page_missing_from_the_nav_is_reported(site, tmp_path):
    mkdocs_yml = tmp_path / "mkdocs.yml"
    mkdocs_yml.write_text("site_name: x\nnav:\n  - Home: index.md\n  - Gone: gone.md\n")
    assert nav_problems(site, mkdocs_yml) == [
        "other.md: not in the nav of mkdocs.yml",
        "gone.md: in the nav of mkdocs.yml, but no such page",
    ]


def test_a_config_missing_from_the_tables_is_reported(site, tmp_path):
    configs = tmp_path / "recipes" / "configs" / "tiny-x"
    configs.mkdir(parents=True)
    listed, unlisted, prose_only = (configs / f"{n}.yaml" for n in ("listed", "unlisted", "prose_only"))
    for path in (listed, unlisted, prose_only):
        path.write_text("recipe: sft\n")
    (site / "recipes.md").write_text(
        "| config | launch |\n|---|---|\n"
        "| `recipes/configs/tiny-x/listed.yaml` | `accelerate launch recipes/sft.py --config ...` |\n\n"
        "Outside a table: `recipes/configs/tiny-x/prose_only.yaml`.\n"
    )
    missing = configs_missing_from_tables([listed, unlisted, prose_only], sorted(site.glob("*.md")), tmp_path)
    assert missing == ["recipes/configs/tiny-x/unlisted.yaml", "recipes/configs/tiny-x/prose_only.yaml"]
