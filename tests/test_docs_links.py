"""Every relative link in README.md and docs/ resolves (files, and #anchors to headings)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / 'README.md'] + sorted((ROOT / 'docs').rglob('*.md')) + sorted(
    (ROOT / 'configs').rglob('README.md')) + [ROOT / 'checkpoints' / 'README.md']
LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')


def _anchors(page: Path):
    """GitHub-style heading anchors of a markdown file."""
    out = set()
    for line in page.read_text().splitlines():
        m = re.match(r'#+\s+(.*)', line)
        if m:
            text = re.sub(r'[`*_]', '', m.group(1)).strip().lower()
            out.add(re.sub(r'[^\w\- ]', '', text).replace(' ', '-'))
    return out


@pytest.mark.parametrize('page', PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    text = re.sub(r'```.*?```', '', page.read_text(), flags=re.S)  # not links in code blocks
    bad = []
    for target in LINK.findall(text):
        if re.match(r'[a-z]+://', target) or target.startswith('mailto:'):
            continue
        path, _, anchor = target.partition('#')
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f'{target}: no such file')
        elif anchor and dest.suffix == '.md' and anchor not in _anchors(dest):
            bad.append(f'{target}: no heading #{anchor} in {dest.name}')
    assert not bad, f'{page.relative_to(ROOT)}: ' + '; '.join(bad)


def test_nothing_refers_outside_the_repository():
    for page in PAGES:
        text = page.read_text()
        assert '../shared' not in text and 'DESIGN.md' not in text, page
