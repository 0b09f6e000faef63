"""The README and docs/ as a reader meets them: every relative link and #anchor resolves, every command shown in a
bash block names params keys, modules, files and flags that exist, the README stays short, and no page carries a
path of one machine, a date as provenance or a tracker reference. Fast: no network, no subprocess."""

from __future__ import annotations

import importlib.util
import re
import shlex
import tomllib
import types
import typing
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
README_MAX_LINES = 260

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)")
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.*?[^`])\1(?!`)", re.DOTALL)
LINK = re.compile(r"!?\[([^\]]*)\]\(\s*<?([^()\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
SHELLS = {"bash", "sh", "shell"}
SEPARATORS = {"&&", "||", "|", ";"}
OUR_PACKAGES = ("flows", "pipeline", "benchmarks", "tests")
REPO_PATH_PREFIXES = ("tests/", "benchmarks/", "pipeline/", "flows/", "presets/", "docs/", ".ci/")
PLACEHOLDER = re.compile(r"<[^>]*>|\.\.\.|…")

FORBIDDEN = [
    (re.compile(r"(?<![\w.~])/(?:work|tmp|root|home)/"), "an absolute path of one machine"),
    (re.compile(r"\b20\d\d-\d\d-\d\d\b"), "a date (say what produced the figure: command and hardware)"),
    (re.compile(r"\bissues?\s*#?\d+", re.IGNORECASE), "a reference to the issue tracker"),
    (re.compile(r"\bthe issue's\b", re.IGNORECASE), "a reference to the issue tracker"),
    (re.compile(r"\bthis machine\b", re.IGNORECASE), "'this machine' (name the hardware)"),
    (re.compile(r"\bthe machine of\b", re.IGNORECASE), "'the machine of' (name the hardware)"),
    (re.compile(r"\bseed notebooks?\b", re.IGNORECASE), "the seed notebooks, which a reader cannot see"),
]


# --- reading the pages ---------------------------------------------------------------------------------------------


@dataclass
class CodeBlock:
    lang: str
    lines: list[tuple[int, str]] = field(default_factory=list)  # (line number, text)


@dataclass
class Page:
    path: Path
    text: str
    outside: str  # the text with fenced code blocks blanked out (line numbers kept)
    prose: str  # ... and inline code blanked out too
    blocks: list[CodeBlock]

    @property
    def name(self) -> str:
        return self.path.relative_to(ROOT).as_posix()


def _blank(match: re.Match[str]) -> str:
    return re.sub(r"[^\n]", " ", match[0])


@cache
def read_page(path: Path) -> Page:
    text = path.read_text(encoding="utf-8")
    prose_lines: list[str] = []
    blocks: list[CodeBlock] = []
    fence: str | None = None
    for number, line in enumerate(text.split("\n"), start=1):
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = opening[1]
            blocks.append(CodeBlock(opening[2].lower()))
            prose_lines.append("")
        elif fence is not None:
            if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
                fence = None
            else:
                blocks[-1].lines.append((number, line))
            prose_lines.append("")
        else:
            prose_lines.append(line)
    outside = "\n".join(prose_lines)
    # Inline code never spans a blank line: blank out each span that does not.
    prose = CODE_SPAN.sub(lambda m: _blank(m) if "\n\n" not in m[0] else m[0], outside)
    return Page(path, text, outside, prose, blocks)


def line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text as rendered, lowercased, punctuation but hyphens and underscores removed,
    spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = text.replace("`", "").lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LMN")
    return kept.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    page = read_page(path)
    seen: dict[str, int] = {}
    found = set()
    for line in page.outside.split("\n"):
        heading = HEADING.match(line)
        if not heading:
            continue
        base = slug(heading[2])
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


# --- what the commands may name ------------------------------------------------------------------------------------


def _dotted(tree: object, prefix: str = "") -> set[str]:
    keys = set()
    if isinstance(tree, dict):
        for key, value in tree.items():
            path = f"{prefix}{key}"
            keys.add(path)
            keys |= _dotted(value, f"{path}.")
    return keys


def _models_in(annotation: object) -> list[type]:
    """The pydantic models an annotation may hold (through Optional, unions and Annotated)."""
    from pydantic import BaseModel

    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _schema_keys(model: type, prefix: str = "") -> set[str]:
    keys = set()
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        keys.add(path)
        if typing.get_origin(info.annotation) is dict:
            keys.add(f"{path}.*")  # a mapping of names the user chooses (evaluate.collections)
        for inner in _models_in(info.annotation):
            keys |= _schema_keys(inner, f"{path}.")
    return keys


@cache
def param_keys() -> frozenset[str]:
    """Every dotted key of params.yaml, and every key the params schema (pipeline/config.py) accepts."""
    from pipeline.config import Params

    keys = _dotted(yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8")))
    return frozenset(keys | _schema_keys(Params))


def module_file(name: str) -> Path | None | bool:
    """Where module `name` is, without importing it: its file (or package __init__), True for a module found
    elsewhere (an extension, a namespace package), None if there is no such module."""
    parts = name.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    found: Path | bool = Path(spec.origin) if spec.origin and spec.origin not in ("built-in", "frozen") else True
    locations = list(spec.submodule_search_locations or [])
    for part in parts[1:]:
        if not locations:
            return None
        for location in map(Path, locations):
            if (location / part / "__init__.py").is_file():
                found, locations = location / part / "__init__.py", [str(location / part)]
                break
            if (location / f"{part}.py").is_file():
                found, locations = location / f"{part}.py", []
                break
            if any(location.glob(f"{part}.*.so")) or any(location.glob(f"{part}.*.pyd")):
                found, locations = True, []
                break
            if (location / part).is_dir():
                found, locations = True, [str(location / part)]
                break
        else:
            return None
    return found


@cache
def console_scripts() -> dict[str, str]:
    """pyproject's [project.scripts]: command -> module."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {command: target.split(":")[0] for command, target in project.get("scripts", {}).items()}


def program_sources(module: str | None, script: str | None) -> list[Path]:
    """The source files whose text must name a flag given to our program; [] when it is not ours."""
    if script is not None:
        return [ROOT / script] if (ROOT / script).is_file() else []
    assert module is not None
    if module.split(".")[0] not in OUR_PACKAGES:
        return []
    found = module_file(module)
    if not isinstance(found, Path):
        return []
    sources = [found]
    if module.startswith("flows."):
        sources.append(ROOT / "flows" / "cli.py")  # the command line every stage shares
    return sources


def flag_named(flag: str, sources: list[Path]) -> bool:
    return any(f'"{flag}"' in source.read_text(encoding="utf-8") or f"'{flag}'" in source.read_text(encoding="utf-8")
               for source in sources)


# --- the commands of bash blocks -----------------------------------------------------------------------------------


def strip_comment(line: str) -> str:
    """The line without a shell comment (a # at the start of a word, outside quotes)."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


def logical_lines(block: CodeBlock) -> list[tuple[int, str]]:
    """The block's commands, continuation lines joined, comments removed: (first line number, command)."""
    commands: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, raw in block.lines:
        text = strip_comment(raw).rstrip()
        continued = text.endswith("\\")
        text = text[:-1] if continued else text
        pending = (pending[0], f"{pending[1]} {text}") if pending else (number, text)
        if not continued:
            if pending[1].strip():
                commands.append(pending)
            pending = None
    if pending and pending[1].strip():
        commands.append(pending)
    return commands


def simple_commands(tokens: list[str]) -> list[list[str]]:
    commands: list[list[str]] = [[]]
    for token in tokens:
        if token in SEPARATORS:
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def is_python(token: str) -> bool:
    return re.fullmatch(r"(?:.*/)?python(?:3(?:\.\d+)?)?", token) is not None


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    commands: int = 0
    checked: int = 0  # python invocations and -S keys checked

    def add(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")


def check_keys(tokens: list[str], where: str, report: Report) -> None:
    """-S key=value, --set-param key=value, --set, and bench_quality's --variant NAME:key=value,... name real keys."""
    keys: list[str] = []
    for index, token in enumerate(tokens):
        value = None
        if token in ("-S", "--set-param", "--set") and index + 1 < len(tokens):
            value = tokens[index + 1]
        elif token.startswith(("--set-param=", "--set=")):
            value = token.split("=", 1)[1]
        elif token.startswith("-S") and len(token) > 2 and "=" in token:
            value = token[2:]
        if value is not None:
            keys.append(value.split("=", 1)[0].removeprefix("+"))  # +key: DVC's way of adding a key params.yaml lacks
        if token == "--variant" and index + 1 < len(tokens):
            _, _, overrides = tokens[index + 1].partition(":")
            keys += [item.split("=", 1)[0] for item in overrides.split(",") if item]
    for key in keys:
        report.checked += 1
        if key not in param_keys() and f"{key.rpartition('.')[0]}.*" not in param_keys():
            report.add(where, f"params key {key!r} is neither in params.yaml nor in pipeline/config.py's schema")


def check_paths(tokens: list[str], where: str, report: Report) -> None:
    """Arguments that name a file or folder of the repository name one that exists."""
    for token in tokens:
        candidate = token.split("=", 1)[-1]
        if candidate.startswith(REPO_PATH_PREFIXES) and not PLACEHOLDER.search(candidate):
            if not (ROOT / candidate.rstrip("/")).exists():
                report.add(where, f"{candidate!r} does not exist in the repository")


def check_program(tokens: list[str], where: str, report: Report) -> None:
    """A python invocation (python -m MODULE, python FILE.py) or one of our console scripts: the module or file
    exists, and every flag given to our own program is one its source names."""
    module = script = None
    arguments: list[str] = []
    start = next((index for index, token in enumerate(tokens) if is_python(token)), None)
    if start is not None:
        rest = tokens[start + 1 :]
        while rest and rest[0].startswith("-") and rest[0] != "-m":
            rest = rest[1:]  # the interpreter's own options
        if not rest:
            return
        report.checked += 1
        if rest[0] == "-m":
            if len(rest) < 2:
                report.add(where, "python -m without a module")
                return
            module, arguments = rest[1], rest[2:]
            if module_file(module) is None:
                report.add(where, f"python -m {module}: no such module")
                return
        else:
            script, arguments = rest[0], rest[1:]
            if not (ROOT / script).is_file():
                report.add(where, f"python {script}: no such file in the repository")
                return
    elif tokens[0] in console_scripts():
        module, arguments = console_scripts()[tokens[0]], tokens[1:]
        report.checked += 1
    else:
        return
    sources = program_sources(module, script)
    if not sources:
        return
    program = module or script
    for token in arguments:
        if re.fullmatch(r"-\d.*", token) or not token.startswith("-") or token in ("-", "-h", "--help"):
            continue  # not a flag, or argparse's own
        flag = token.split("=", 1)[0]
        if not flag_named(flag, sources):
            report.add(where, f"{program}: flag {flag!r} is not in {', '.join(s.relative_to(ROOT).as_posix() for s in sources)}")
    if module == "pipeline.presets":
        names = [token for token in arguments if not token.startswith("-") and not PLACEHOLDER.search(token)]
        for name in names[:1]:
            if name != "NAME" and not (ROOT / "presets" / f"{name}.yaml").is_file():
                report.add(where, f"preset {name!r}: no presets/{name}.yaml")
    for index, token in enumerate(arguments[:-1]):
        if token == "--preset" and not PLACEHOLDER.search(arguments[index + 1]):
            if not (ROOT / "presets" / f"{arguments[index + 1]}.yaml").is_file():
                report.add(where, f"--preset {arguments[index + 1]}: no presets/{arguments[index + 1]}.yaml")


@cache
def command_report() -> Report:
    report = Report()
    for path in PAGES:
        page = read_page(path)
        for block in page.blocks:
            if block.lang not in SHELLS:
                continue
            for number, line in logical_lines(block):
                where = f"{page.name}:{number}"
                try:
                    tokens = shlex.split(line)
                except ValueError as exc:
                    report.add(where, f"cannot split the command ({exc}): {line.strip()}")
                    continue
                for command in simple_commands(tokens):
                    report.commands += 1
                    check_keys(command, where, report)
                    check_paths(command, where, report)
                    check_program(command, where, report)
    return report


# --- the tests -----------------------------------------------------------------------------------------------------


def all_links() -> list[tuple[Page, int, str]]:
    found = []
    for path in PAGES:
        page = read_page(path)
        for match in LINK.finditer(page.prose):
            found.append((page, line_of(page.prose, match.start()), match[2]))
    return found


def test_every_relative_link_and_anchor_resolves() -> None:
    problems = []
    checked = 0
    for page, line, target in all_links():
        if not target or SCHEME.match(target):
            continue  # http(s), mailto and other schemes are not ours to check offline
        checked += 1
        where = f"{page.name}:{line}: link {target!r}"
        path_part, _, anchor = target.partition("#")
        destination = page.path if not path_part else (page.path.parent / unquote(path_part)).resolve()
        if not destination.exists():
            shown = destination.relative_to(ROOT).as_posix() if destination.is_relative_to(ROOT) else destination
            problems.append(f"{where}: {shown} does not exist")
            continue
        if anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            problems.append(f"{where}: no heading gives #{anchor} in {destination.relative_to(ROOT).as_posix()}")
        elif anchor and destination.suffix != ".md":
            problems.append(f"{where}: an #anchor into a file that is not Markdown")
    assert not problems, "\n".join(problems)
    assert checked > 20, f"only {checked} relative links found in README.md and docs/: is the parser broken?"


def test_slugs_follow_github() -> None:
    assert slug("What each stage produces") == "what-each-stage-produces"
    assert slug("Image sources (`source.kind`)") == "image-sources-sourcekind"
    assert slug("At scale: folders or shards") == "at-scale-folders-or-shards"
    assert slug("The recipe's parts on 20,000 CIFAR-10 photos") == "the-recipes-parts-on-20000-cifar-10-photos"
    assert slug("Running, watching, interrupting") == "running-watching-interrupting"


def test_commands_in_bash_blocks_name_what_exists() -> None:
    report = command_report()
    assert not report.problems, "\n".join(report.problems)
    assert report.commands > 20, f"only {report.commands} commands found in bash blocks: is the parser broken?"
    assert report.checked > 10, f"only {report.checked} python commands and -S keys checked: is the parser broken?"


@pytest.mark.parametrize(
    "line, expected",
    [
        ("dvc exp run -S train.no_such_key=1", "params key 'train.no_such_key'"),
        ("python -m flows.no_such_stage", "no such module"),
        ("python benchmarks/no_such_bench.py", "no such file"),
        ("python -m flows.pipeline serve --no-such-flag", "flag '--no-such-flag'"),
        ("python benchmarks/bench_quality.py <dir> --variant x:train.nope=1", "params key 'train.nope'"),
        ("pytest tests/no_such_folder", "does not exist"),
    ],
)
def test_the_command_checks_catch_mistakes(line: str, expected: str) -> None:
    report = Report()
    for command in simple_commands(shlex.split(line)):
        check_keys(command, "x", report)
        check_paths(command, "x", report)
        check_program(command, "x", report)
    assert any(expected in problem for problem in report.problems), report.problems


def test_the_command_checks_accept_what_exists() -> None:
    report = Report()
    line = ("python -m flows.pipeline serve --cron '0 2 * * *' --timezone UTC && python -m flows.train --params params.yaml"
            " | python -m torch.distributed.run --standalone; dvc exp run -S train.generator.base_filters=64"
            " -S source.urls.file=x.csv; colorize a.jpg -o out --overwrite")
    for command in simple_commands(shlex.split(line)):
        check_keys(command, "x", report)
        check_paths(command, "x", report)
        check_program(command, "x", report)
    assert not report.problems


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move detail to docs/"


def test_every_docs_page_is_linked_from_the_readme_and_has_a_title_and_summary() -> None:
    readme_targets = {
        (README.parent / target.partition("#")[0]).resolve()
        for page, _, target in all_links()
        if page.path == README and target and not SCHEME.match(target)
    }
    problems = []
    for path in PAGES[1:]:
        name = path.relative_to(ROOT).as_posix()
        if path.resolve() not in readme_targets:
            problems.append(f"{name}: not linked from README.md's documentation list")
        lines = path.read_text(encoding="utf-8").splitlines()
        if not lines or not lines[0].startswith("# "):
            problems.append(f"{name}:1: does not start with a '# Title' line")
        summary = next((line for line in lines[1:] if line.strip()), "")
        if not summary or summary.startswith(("#", "|", "```", "-", "!")):
            problems.append(f"{name}: no summary sentence under its title")
    assert not problems, "\n".join(problems)


def test_no_machine_paths_dates_or_tracker_references() -> None:
    problems = []
    for path in PAGES:
        page = read_page(path)
        for number, line in enumerate(page.text.split("\n"), start=1):
            for pattern, what in FORBIDDEN:
                found = pattern.search(line)
                if found:
                    problems.append(f"{page.name}:{number}: {what}: {found[0]!r}")
    assert not problems, "\n".join(problems)
