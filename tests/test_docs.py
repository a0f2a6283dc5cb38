"""The documentation stays true: docs/formats.md's worked example is recomputed with the product's own
functions from the JSON it shows, every relative link of README.md and docs/*.md resolves inside the
repository (file and anchor), and every `secureflow …` command the docs name exists with its options.

The worked example is written by ``scripts/docs_example.py --write``; each value sits in a fenced block
preceded by ``<!-- example: NAME -->``.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_readme_commands import CHAIN, _problem

from secureflow.ledger._internal.toolchain import node_executable, node_modules
from secureflow.ledger.anchoring import batch_id_for
from secureflow.ledger.merkle import MerkleTree, keccak256, process_proof
from secureflow.ledger.receipts import Receipt
from secureflow.ledger.records import StepRecord, job_id_for, params_hash
from secureflow.ledger.signing import job_salt, salted_digest, signature_problems

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FORMATS = DOCS / "formats.md"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
EXPECTED_PAGES = {"architecture.md", "trust-model.md", "formats.md", "contracts.md", "operations.md"}

BLOCK = re.compile(r"<!-- example: ([a-z0-9-]+) -->\n```[a-z]*\n(.*?)\n```", re.DOTALL)


def _blocks() -> dict[str, str]:
    found: dict[str, str] = {}
    for name, body in BLOCK.findall(FORMATS.read_text(encoding="utf-8")):
        assert name not in found, f"example block {name!r} appears twice in {FORMATS.name}"
        found[name] = body
    return found


def _values(text: str) -> dict[str, str]:
    """``name = value`` lines of a text block."""
    values = {}
    for line in text.splitlines():
        name, sep, value = line.partition(" = ")
        assert sep, f"not a 'name = value' line: {line!r}"
        values[name.strip()] = value.strip()
    return values


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


@pytest.fixture(scope="module")
def blocks() -> dict[str, str]:
    return _blocks()


def test_the_docs_pages_exist() -> None:
    assert {p.name for p in DOCS.glob("*.md")} >= EXPECTED_PAGES


def test_the_worked_example_has_every_block(blocks: dict[str, str]) -> None:
    assert set(blocks) == {
        "job-id",
        "params",
        "params-hash",
        "content",
        "salted-digest",
        "record-0",
        "canonical-0",
        "hashes-0",
        "canonical-1",
        "hashes-1",
        "tree",
        "receipt-0",
    }


def test_job_id_params_hash_and_salted_digest(blocks: dict[str, str]) -> None:
    job = _values(blocks["job-id"])
    assert job_id_for(job["creator"], job["manifest_hash"], job["salt"]) == job["job_id"]

    commitment = _values(blocks["params-hash"])
    params = json.loads(blocks["params"])
    assert params_hash(params, commitment["job_secret"]) == commitment["params_hash"]

    salted = _values(blocks["salted-digest"])
    content = (blocks["content"] + "\n").encode()
    assert _hex(keccak256(content)) == salted["content_digest"]
    salt = job_salt(bytes.fromhex(salted["party_secret"][2:]), job["job_id"])
    assert _hex(salt) == salted["job_salt"]
    assert salted_digest(salt, keccak256(content)) == salted["salted_digest"]

    record = json.loads(blocks["record-0"])
    assert record["job_id"] == job["job_id"]
    assert record["params_hash"] == commitment["params_hash"]
    assert record["parties"][0]["inputs"]["customers"] == salted["salted_digest"]


def _record_checks(record_json: Any, canonical: str, hashes: dict[str, str]) -> bytes:
    record = StepRecord.model_validate(record_json)
    assert record.canonical_json() == canonical.encode(), "the canonical bytes shown are not the record's"
    assert _hex(keccak256(canonical.encode())) == hashes["record_hash"]
    _, record_hash, leaf = record.hashes()
    assert _hex(record_hash) == hashes["record_hash"]
    assert _hex(leaf) == hashes["leaf"]
    parties = [p.party for p in record.parties]
    assert signature_problems(record, parties) == [], "a party's signature in the example does not verify"
    return leaf


def test_records_canonical_bytes_hashes_and_leaves(blocks: dict[str, str]) -> None:
    record0 = json.loads(blocks["record-0"])
    assert json.loads(blocks["canonical-0"]) == record0
    _record_checks(record0, blocks["canonical-0"], _values(blocks["hashes-0"]))
    _record_checks(json.loads(blocks["canonical-1"]), blocks["canonical-1"], _values(blocks["hashes-1"]))


def test_two_leaf_tree_proofs_and_batch_id(blocks: dict[str, str]) -> None:
    leaf0 = bytes.fromhex(_values(blocks["hashes-0"])["leaf"][2:])
    leaf1 = bytes.fromhex(_values(blocks["hashes-1"])["leaf"][2:])
    tree_values = _values(blocks["tree"])
    tree = MerkleTree([leaf0, leaf1])
    assert _hex(tree.root) == tree_values["root"]
    assert _hex(keccak256(min(leaf0, leaf1) + max(leaf0, leaf1))) == tree_values["root"]
    for leaf, name in ((leaf0, "proof_0"), (leaf1, "proof_1")):
        shown = json.loads(tree_values[name])
        assert [_hex(p) for p in tree.proof(leaf)] == shown
        assert _hex(process_proof(leaf, [bytes.fromhex(p[2:]) for p in shown])) == tree_values["root"]
    assert _hex(batch_id_for(tree.root)) == tree_values["batch_id"]


_OPENZEPPELIN = """
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');
const values = JSON.parse(process.argv[1]);
const tree = StandardMerkleTree.of(values, ['bytes32', 'uint64', 'bytes32']);
process.stdout.write(JSON.stringify({ root: tree.root, proofs: values.map((_, i) => tree.getProof(i)) }));
"""


def test_openzeppelin_merkle_tree_gives_the_same_root_and_proofs(blocks: dict[str, str]) -> None:
    """The example's tree as `@openzeppelin/merkle-tree` (the pinned npm package) builds it."""
    job_id = _values(blocks["job-id"])["job_id"]
    hashes = [_values(blocks[f"hashes-{seq}"])["record_hash"] for seq in (0, 1)]
    values = json.dumps([[job_id, str(seq), hashes[seq]] for seq in (0, 1)])
    result = subprocess.run(
        [node_executable(), "-e", _OPENZEPPELIN, values],
        capture_output=True,
        text=True,
        check=True,
        cwd=node_modules().parent,
        timeout=60,
    )
    answer = json.loads(result.stdout)
    tree_values = _values(blocks["tree"])
    assert answer["root"] == tree_values["root"]
    assert answer["proofs"] == [json.loads(tree_values["proof_0"]), json.loads(tree_values["proof_1"])]


def test_the_receipt(blocks: dict[str, str]) -> None:
    receipt = Receipt.model_validate(json.loads(blocks["receipt-0"]))
    hashes, tree_values = _values(blocks["hashes-0"]), _values(blocks["tree"])
    assert receipt.version == 2
    assert receipt.record == json.loads(blocks["record-0"])
    assert (receipt.job_id, receipt.seq) == (receipt.record["job_id"], receipt.record["seq"])
    assert receipt.record_hash == hashes["record_hash"]
    assert receipt.leaf == hashes["leaf"]
    assert receipt.proof == json.loads(tree_values["proof_0"])
    assert receipt.batch_root == tree_values["root"]
    assert receipt.batch_id == tree_values["batch_id"]
    assert receipt.to_json(indent=2) == blocks["receipt-0"], "the receipt is not shown as the code writes it"


def test_the_example_is_what_the_script_writes() -> None:
    """The example in the document is the generator's output (so regenerating it changes nothing)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_example", ROOT / "scripts" / "docs_example.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.example() in FORMATS.read_text(encoding="utf-8")


# -- links ----------------------------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def _prose_lines(path: Path) -> list[str]:
    """The lines of a Markdown file outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"`|\*\*|__", "", heading.strip()).lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for line in _prose_lines(path):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = _slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    anchors.update(re.findall(r'<a\s+(?:name|id)="([^"]+)"', path.read_text(encoding="utf-8")))
    return anchors


def _links(path: Path) -> list[str]:
    found = []
    for line in _prose_lines(path):
        stripped = re.sub(r"`[^`]*`", "", line)  # a link inside a code span is not a link
        found.extend(LINK.findall(stripped))
    return found


LINKS = [(page, target) for page in PAGES for target in _links(page)]


def test_the_pages_have_links() -> None:
    assert any(page.name == "README.md" and t.startswith("docs/") for page, t in LINKS)
    assert len({page for page, _ in LINKS}) >= 4


def _link_problem(page: Path, target: str) -> str | None:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not a file of the repository
        return None
    file_part, _, anchor = target.partition("#")
    if file_part.startswith(("/", "..")) or "/../" in file_part:
        return f"{page.name} links outside the repository: {target}"
    resolved = (page.parent / file_part).resolve() if file_part else page
    try:
        resolved.relative_to(ROOT)
    except ValueError:
        return f"{page.name} links outside the repository: {target}"
    if not resolved.exists():
        return f"{page.name} links to a missing file: {target}"
    if anchor:
        if resolved.suffix != ".md":
            return f"{page.name} links to an anchor of a non-Markdown file: {target}"
        if anchor not in _anchors(resolved):
            return f"{page.name} links to a missing anchor: {target}"
    return None


def test_the_link_check_catches_bad_links() -> None:
    readme = ROOT / "README.md"
    assert _link_problem(readme, "docs/formats.md") is None
    assert _link_problem(readme, "https://example.org/x") is None
    assert "outside" in str(_link_problem(readme, "../shared/DESIGN.md"))
    assert "missing file" in str(_link_problem(readme, "docs/nope.md"))
    assert "missing anchor" in str(_link_problem(readme, "docs/formats.md#no-such-heading"))
    assert _slug("Restarts and `secureflow doctor`") == "restarts-and-secureflow-doctor"
    assert _slug("Consortium mode: members' own nodes, the production API, Celery") == (
        "consortium-mode-members-own-nodes-the-production-api-celery"
    )


@pytest.mark.parametrize(("page", "target"), LINKS, ids=[f"{p.name}:{t}" for p, t in LINKS])
def test_each_relative_link_resolves_inside_the_repository(page: Path, target: str) -> None:
    problem = _link_problem(page, target)
    assert problem is None, problem


# -- commands -------------------------------------------------------------------------------------------


def _doc_commands() -> list[str]:
    """`secureflow …` in code spans of the prose, and command lines of the fenced blocks."""
    found = []
    for page in sorted(DOCS.glob("*.md")):
        fenced = False
        for line in page.read_text(encoding="utf-8").splitlines():
            if FENCE.match(line):
                fenced = not fenced
                continue
            if not fenced:
                found.extend(match.group(1) for match in CHAIN.finditer(line))
                continue
            command = re.match(r"^\s*(?:\.venv/bin/)?secureflow ([a-z].*?)(?:\s+#.*)?$", line)
            if command:
                found.append(command.group(1))
    return sorted(set(found))


DOC_COMMANDS = _doc_commands()


def test_the_docs_name_commands() -> None:
    assert len(DOC_COMMANDS) > 20, DOC_COMMANDS


@pytest.mark.parametrize("text", DOC_COMMANDS)
def test_each_command_in_the_docs_exists_with_its_options(text: str) -> None:
    words = text.replace("\\", " ")
    problem = _problem(words)
    assert problem is None, problem
