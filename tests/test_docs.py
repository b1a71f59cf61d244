"""The docs hold: every relative link and every referenced file in README.md, docs/ and experiments/ exists,
and every `--flag` that README.md and docs/ show after a script is one its `--help` lists."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
USER_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ALL_DOCS = USER_DOCS + sorted((ROOT / "experiments").rglob("README.md"))

LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE = re.compile(r"```[a-z]*\n(.*?)```|`([^`\n]+)`", re.S)
# Files the docs name by their path from the repository root (outputs such as policies/runs/ are not files).
FILE = re.compile(r"(?<![\w/.-])((?:scripts|experiments|embodied|tests|docs|envs)/[\w./-]*\w\.(?:py|yaml|md|png|json)"
                  r"|(?:datasets|policies)/\w+\.yaml)\b")
WORD = re.compile(r"[a-z][a-z0-9_-]*$")  # a subcommand, or a positional value that --help ignores


def links(doc: Path, text: str) -> list[str]:
    """The relative links that point nowhere (an anchor is checked against the target's headings)."""
    problems = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            problems.append(f"{_name(doc)}: link to {target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text()):
            problems.append(f"{_name(doc)}: link to {target}: no heading #{anchor}")
    return problems


def _anchors(text: str) -> set[str]:
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", text, re.M)}


def files(doc: Path, text: str) -> list[str]:
    return [f"{_name(doc)}: names {p}: no such file" for p in sorted(set(FILE.findall(text)))
            if not (ROOT / p).exists()]


def _name(doc: Path) -> str:
    return str(doc.relative_to(ROOT)) if doc.is_relative_to(ROOT) else doc.name


def commands(text: str) -> list[tuple[str, list[str], list[str]]]:
    """(program, leading words, flags) for each script or `embodied` command in the code of a doc."""
    found = []
    for block, inline in CODE.findall(text):
        for line in (block.replace("\\\n", " ").splitlines() if block else [inline]):
            line = line.split(" #")[0]
            try:
                tokens = shlex.split(line)
            except ValueError:
                tokens = line.split()
            for i, token in enumerate(tokens):
                program = _program(token, tokens[i - 1] if i else "")
                if program:
                    rest = tokens[i + 1:]
                    words = []
                    for t in rest:
                        if not WORD.match(t):
                            break
                        words.append(t)
                    found.append((program, words, [t.split("=")[0] for t in rest if t.startswith("--")]))
                    break
    return found


def _program(token: str, before: str) -> str | None:
    if token == "embodied" and not before.endswith("import"):
        return "embodied"
    if token.endswith(".py") and "/" not in token and (ROOT / "scripts" / token).exists():
        return f"scripts/{token}"
    if token.endswith(".py") and token.split("/")[0] in ("scripts", "experiments"):
        return token
    return None


def helps(wanted: set[tuple[str, tuple[str, ...]]]) -> dict:
    """`--help` of each (program, words) in one process: {(program, words): (exit code, text)}."""
    code = r"""
import contextlib, io, json, runpy, sys
out = {}
for program, words in json.loads(sys.argv[1]):
    buf, rc = io.StringIO(), 0
    sys.argv = [program, *words, "--help"]
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        try:
            if program == "embodied":
                from embodied.cli import main
                main()
            else:
                runpy.run_path(program, run_name="__main__")
        except SystemExit as e:
            rc = e.code or 0
        except Exception as e:
            rc = repr(e)
    out[json.dumps([program, words])] = [rc, buf.getvalue()]
print(json.dumps(out))
"""
    wanted = sorted(wanted)
    proc = subprocess.run([sys.executable, "-c", code, json.dumps([[p, list(w)] for p, w in wanted])], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env={**_env(), "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    raw = json.loads(proc.stdout.splitlines()[-1])
    return {(p, tuple(w)): tuple(v) for k, v in raw.items() for p, w in [json.loads(k)]}


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


def flag_problems(found, help_of) -> list[str]:
    problems = []
    for program, words, flags in found:
        # The longest run of leading words whose --help answers: the subcommand (or a positional value).
        key = (program, ())
        for n in range(len(words), 0, -1):
            if help_of.get((program, tuple(words[:n])), (1,))[0] == 0:
                key = (program, tuple(words[:n]))
                break
        rc, text = help_of[key]
        if rc != 0:
            problems.append(f"{program} {' '.join(key[1])} --help failed: {rc}")
            continue
        problems += [f"{program} {' '.join(key[1])}: {f} is not in its --help" for f in flags
                     if not re.search(re.escape(f) + r"(?![\w-])", text)]
    return problems


def _wanted(found) -> set:
    return {(p, tuple(w[:n])) for p, w, _ in found for n in range(len(w) + 1)}


@pytest.mark.parametrize("doc", ALL_DOCS, ids=lambda d: str(d.relative_to(ROOT)))
def test_links_and_files_exist(doc):
    text = doc.read_text()
    assert not links(doc, text) + files(doc, text)


def test_every_flag_the_docs_show_is_accepted():
    found = [c for doc in USER_DOCS for c in commands(doc.read_text())]
    assert len({p for p, _, _ in found}) >= 10, "the docs show at least ten programs"
    problems = flag_problems(found, helps(_wanted(found)))
    assert not problems, "\n".join(problems)


def test_the_checks_catch_what_they_are_for(tmp_path):
    doc = tmp_path / "page.md"
    text = ("See [missing](nowhere.md) and [a heading](page.md#no-such) and `scripts/no_such_script.py`.\n\n"
            "```bash\npython scripts/evaluate.py RUN --episodes 3 --no-such-flag 1\n"
            "embodied data info STORE --json x.json --made-up\n```\n")
    doc.write_text(text)
    assert len(links(doc, text)) == 2 and len(files(doc, text)) == 1
    found = commands(text)
    assert sorted((p, f) for p, _, f in found) == [("embodied", ["--json", "--made-up"]),
                                                   ("scripts/evaluate.py", ["--episodes", "--no-such-flag"]),
                                                   ("scripts/no_such_script.py", [])]
    problems = sorted(flag_problems(found, helps(_wanted(found))))
    assert len(problems) == 3, problems
    assert "--made-up" in problems[0] and "--no-such-flag" in problems[1] and "--help failed" in problems[2], problems
