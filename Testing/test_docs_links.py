"""The documentation stays inside the repository: every ``*.md`` file that a Python file, the README or a document
under ``docs/`` cites exists in the repository, and every relative link of the README and ``docs/*.md`` leads to a
file or folder that exists. (The design document once lived outside the repository, and docstrings cited files
that were not in it.)"""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Folders that are not the project's own text (environments, caches, build outputs) and third-party test data.
SKIPPED_DIRS = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", "build", "dist", "node_modules",
                "demo-output"}
SKIPPED_PATHS = {ROOT / "Testing" / "data"}
#: A cited Markdown file name or path: ``DESIGN.md``, ``docs/STORE.md``, ``../x/README.md``, ``NEW/MODEL_CARD.md``.
MD_CITATION = re.compile(r"(?<![\w./<>-])((?:\.{1,2}/)*(?:[\w<>-]+/)*[\w-]+\.md)\b")
URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
#: Markdown links and images: ``[text](target)``, ``![alt](target "title")``.
MD_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
#: A folder part that is a placeholder in a cited path (``NEW/MODEL_CARD.md``, ``<name>/MODEL_CARD.md``).
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*|<[^>]+>")


def _project_files() -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS and not d.endswith(".egg-info")
                       and not (d.startswith(".") and d not in (".github", ".ci"))
                       and Path(dirpath, d) not in SKIPPED_PATHS]
        found += [Path(dirpath, name) for name in filenames]
    return found


FILES = _project_files()
NAMES = {p.name for p in FILES}
THIS = Path(__file__).resolve()


def _cited_in() -> list[Path]:
    """Python files, the README and the documents under docs/."""
    return sorted(p for p in FILES if (p.suffix == ".py" and p.resolve() != THIS) or p == ROOT / "README.md"
                  or (p.suffix == ".md" and (ROOT / "docs") in p.parents))


def _inside_repository(path: Path) -> bool:
    try:
        path.resolve().relative_to(ROOT)
        return True
    except ValueError:
        return False


def _resolves(citation: str, citing: Path) -> bool:
    """Whether a cited ``*.md`` exists in the repository: a bare name anywhere; a path relative to the repository
    root or to the citing file's folder, never outside the repository; placeholder folders (``NEW/``,
    ``<name>/``) match any folder."""
    if "/" not in citation:
        return citation in NAMES
    folders, name = citation.split("/")[:-1], citation.split("/")[-1]
    if all(PLACEHOLDER.fullmatch(f) for f in folders):
        return name in NAMES
    pattern = "/".join("*" if PLACEHOLDER.fullmatch(f) else f for f in folders) + "/" + name
    for base in (ROOT, citing.parent):
        if any(m.is_file() and _inside_repository(m) for m in base.glob(pattern)):
            return True
    return False


def md_citations(text: str) -> list[str]:
    """The ``*.md`` names and paths ``text`` cites, leaving out URLs (other projects' files)."""
    text = URL.sub(" ", text)
    return MD_CITATION.findall(text)


def test_the_citation_pattern_finds_names_and_paths_but_not_urls() -> None:
    text = ('See docs/DESIGN.md and STORE.md; "../shared/DESIGN.md", `NEW/MODEL_CARD.md`, '
            "https://github.com/Slicer/Slicer/blob/main/Docs/user_guide/getting_started.md, results.md.")
    assert md_citations(text) == ["docs/DESIGN.md", "STORE.md", "../shared/DESIGN.md", "NEW/MODEL_CARD.md",
                                  "results.md"]
    assert not _resolves("../shared/DESIGN.md", ROOT / "README.md")
    assert not _resolves("INTERFACES.md", ROOT / "README.md")


def test_the_design_documents_are_in_the_repository() -> None:
    assert (ROOT / "docs" / "DESIGN.md").is_file() and (ROOT / "docs" / "STORE.md").is_file()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](docs/DESIGN.md)" in readme and "../shared" not in readme


def test_every_cited_markdown_file_exists() -> None:
    cited = _cited_in()
    assert ROOT / "README.md" in cited and ROOT / "docs" / "DESIGN.md" in cited and len(cited) > 100
    missing = []
    for path in cited:
        text = path.read_text(encoding="utf-8", errors="replace")
        missing += [f"{path.relative_to(ROOT)} cites {c}" for c in sorted(set(md_citations(text)))
                    if not _resolves(c, path)]
    assert not missing, "Markdown files cited but not in the repository:\n" + "\n".join(missing)


def test_every_relative_link_exists() -> None:
    broken = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in MD_LINK.findall(path.read_text(encoding="utf-8")):
            if URL.match(target) or target.startswith(("#", "mailto:")):
                continue
            resolved = (path.parent / target.split("#", 1)[0]).resolve()
            if not resolved.exists() or not _inside_repository(resolved):
                broken.append(f"{path.relative_to(ROOT)} links to {target}")
    assert not broken, "Relative links that lead nowhere in the repository:\n" + "\n".join(broken)
