"""The README's "after up" walkthrough, run as it is written: the commands are read from README.md (the block
after ``<!-- after up -->``), so the document and this test cannot drift.

A real ``secureflow up`` runs in a fresh folder (its default workdir ``.secureflow/up``; only ``--port`` is
added, so that parallel runs do not collide); then every later line runs in bash in that folder with
``.venv/bin`` on ``PATH``, the state a reader's terminal keeps (``source`` and ``export`` lines, the only
edit being ``JOB_ID`` replaced by the id ``job submit`` printed), and its stdout and stderr going to a file,
not a terminal, with no ``COLUMNS``: submit → bundle → verify → reconcile → settle measure → propose →
approve by alice and by bob → set-weights → deposit → withdraw by both → history. Then the transcript is
read as a reader (or a script) would: every id, address, key path and printed command is whole on one line,
the commands each step prints are the next step's with the id filled in, counts have their plural right,
and no Rich markup was eaten or shown."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

from test_cli_sigterm import assert_none_left, command, descendants, read_env, read_until, wait_serving
from test_readme_commands import README, _problem

from secureflow.ledger.devchain import free_port

UP_READY = "Ctrl-C stops everything"
MARKER = "<!-- after up -->"
HEX = re.compile(r"(?<![\w-])0x[0-9a-fA-F]+")  # not inside an API key (sfk_…)
PRINTED_COMMAND = re.compile(r"(?:^|: )secureflow ([a-z][a-z-]*(?: .+?)?)(?:  \(|$)")


def walkthrough() -> list[str]:
    """The commands of the README's "after up" block, without their comments."""
    text = README.read_text(encoding="utf-8")
    assert MARKER in text, "README.md has no 'after up' walkthrough"
    block = text.split(MARKER, 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [re.split(r"\s+# ", line, maxsplit=1)[0].strip() for line in block.splitlines()]
    return [c for c in commands if c]


def test_the_walkthrough_reads_the_readme() -> None:
    commands = walkthrough()
    assert commands[0] == ".venv/bin/secureflow up" and commands[1].startswith("source ")
    for step in ("job submit", "job bundle", "verify", "audit reconcile", "settle measure", "settle propose"):
        assert any(c.startswith(f"secureflow {step} ") or c == f"secureflow {step}" for c in commands), step
    for step in ("settle approve", "settle set-weights", "settle deposit", "settle withdraw"):
        assert any(c.startswith(f"secureflow {step} ") for c in commands), step
    for c in commands:  # every command exists with the options it shows (as test_readme_commands checks)
        if c.startswith("secureflow "):
            assert _problem(c.removeprefix("secureflow ").replace("JOB_ID", "0x" + "00" * 32)) is None, c


def test_the_readme_walkthrough_runs_as_printed_with_output_to_a_file(tmp_path: Path) -> None:
    commands = walkthrough()
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECUREFLOW_") and k != "COLUMNS"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    port = free_port()
    up = commands.pop(0)
    assert up == ".venv/bin/secureflow up"
    with command("up", "--port", str(port), cwd=tmp_path, env=env) as proc:
        started = read_until(proc, UP_READY)
        spawned = descendants(proc.pid)
        rest: list[str] = []  # read on, so that `up`'s log never fills the pipe and stops it
        drain = threading.Thread(target=lambda: rest.extend(proc.stdout or ()), daemon=True)
        drain.start()
        wait_serving(port, proc)
        settings = read_env(tmp_path / ".secureflow" / "up")
        transcript, outputs = _run_walkthrough(commands, tmp_path, env)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0, "".join(rest)
        drain.join(30)
        assert_none_left(spawned)

    saved = {"transcript": started + transcript, "settings": settings, "outputs": outputs}
    (tmp_path / "walkthrough.json").write_text(json.dumps(saved))  # to read when a check below fails
    _check_one_line(started + transcript, settings, outputs)
    _check_each_step(tmp_path, transcript, settings, outputs)


def _check_each_step(
    tmp_path: Path, transcript: str, settings: dict[str, str], outputs: dict[str, str]
) -> None:
    """Each step printed what the next one needs (with the id filled in) and what it did."""
    job_id = outputs["job_id"]
    # each step printed what the next one needs, with the id filled in
    assert f"secureflow job bundle {job_id} --out bundle.json" in outputs["secureflow job submit"]
    assert f"--deployment {settings['SECUREFLOW_DEPLOYMENT']}" in outputs["secureflow job bundle"]
    assert f"secureflow settle propose {job_id} --inputs inputs.json" in outputs["secureflow settle measure"]
    assert f"secureflow job status {job_id} --follow" in outputs["secureflow settle propose"]
    assert "secureflow settle approve proposal.json" in outputs["secureflow settle propose"]
    # what each step says it did
    verified = outputs["secureflow verify"]
    assert f"job {job_id}: VALID" in verified and "INVALID" not in verified
    assert "[ok  ] seqs" in verified  # square brackets shown, not eaten as markup
    reconciled = outputs["secureflow audit reconcile"]
    summary = r"\b6 records in \d+ batch(es)? of 1 job checked .*: clean$"
    assert re.search(summary, reconciled, re.M), reconciled
    assert "recorded as step 6" in outputs["secureflow settle propose"]
    # the measured coalitions are jobs every party consented to on chain, checked again before approving
    assert "3 coalition job(s) checked on chain" in outputs["secureflow settle approve"]
    steps = r"^5\s+biclassification_eval\s+confirmed\s+0x[0-9a-f]{64}\s+0x[0-9a-f]{64}\s"
    assert re.search(steps, outputs["secureflow job submit"], re.M), (
        "batch and tx cut in the piped steps table"
    )
    measured = outputs["secureflow settle measure"]  # its minute of SecretFlow shows progress in a file too
    assert measured.startswith("starting the SecretFlow party workers"), measured
    assert "coalition 1/3 (all) started" in measured and "coalition 3/3 (without bob) done" in measured
    assert outputs["secureflow settle set-weights"].startswith(f"weights of job {job_id} set in block")
    withdrawn = re.findall(r"^(0x[0-9a-fA-F]{40}) withdrew (\d+) wei", transcript, re.M)
    parties = {settings_address(tmp_path, "alice"), settings_address(tmp_path, "bob")}
    assert {who for who, _ in withdrawn} == parties
    assert sum(int(wei) for _, wei in withdrawn) == 1_500_000_000_000_000_000  # the whole 1.5ether deposit
    history = outputs["secureflow settle history"]
    assert history.count("RevenueReleased") == 2 and "WeightsSet" in history and "RevenueDeposited" in history


def settings_address(workdir: Path, party: str) -> str:
    """A party's address, from its member key file (what `up` wrote)."""
    from eth_account import Account

    key = (workdir / ".secureflow" / "up" / "keys" / f"{party}.member-key").read_text().strip()
    return str(Account.from_key(key).address)


def _run_walkthrough(commands: list[str], cwd: Path, env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Run each line in bash, in ``cwd``, as a reader's terminal would (earlier ``source``/``export`` lines
    kept), stdout and stderr to a file; the whole transcript and each command's output by its first words
    (the last run of each), plus the job id."""
    state: list[str] = []
    outputs: dict[str, str] = {}
    transcript = []
    log = cwd / "walkthrough.out"
    for line in commands:
        if line.startswith(("source ", "export ")):
            state.append(line)
            continue
        if "JOB_ID" in line:
            assert "job_id" in outputs, f"{line}: no job id printed before it"
            line = line.replace("JOB_ID", outputs["job_id"])
        with log.open("w") as out:  # a file: not a terminal
            done = subprocess.run(
                ["bash", "-c", "set -e\n" + "\n".join([*state, line])],
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=900,
                check=False,
            )
        text = log.read_text()
        print(f"$ {line}\n{text}")  # shown when the test fails
        assert done.returncode == 0, f"{line}\n{text}"
        transcript.append(f"$ {line}\n{text}")
        words = shlex.split(line)
        key = " ".join(words[:3] if words[1] in ("job", "settle", "audit") else words[:2])
        outputs[key] = text
        if words[1:3] == ["job", "submit"]:
            found = re.search(r"^job (0x[0-9a-f]{64}) submitted$", text, re.M)
            assert found, text
            outputs["job_id"] = found.group(1)
    return "".join(transcript), outputs


def _check_one_line(transcript: str, settings: dict[str, str], outputs: dict[str, str]) -> None:
    """Nothing a reader copies is broken across lines or cut: the job id, the parties' addresses, the key
    files and deployment the env file names appear whole (each time they appear at all); every 0x value is
    a whole address or 32-byte value, or shortened on purpose with "…"; every command the output prints
    names an existing command with its options; no Rich markup is shown."""
    job_id = outputs["job_id"]
    wanted = [
        job_id,
        settings["SECUREFLOW_DEPLOYMENT"],
        settings["SECUREFLOW_RPC_URL"],
        *(v for k, v in settings.items() if k.endswith("_KEY_FILE")),
    ]
    joined = transcript.replace("\n", "")
    lines = transcript.splitlines()
    for value in wanted:
        whole = sum(line.count(value) for line in lines)
        assert whole == joined.count(value), f"{value!r} is broken across lines"
    assert transcript.count(job_id) > 20, "the job id is printed by the commands that act on it"
    assert max(len(line) for line in lines) > 120, "long lines were wrapped (the output is not a terminal)"
    for line in lines:
        for match in HEX.finditer(line):
            digits = len(match.group()) - 2
            shortened = line[match.end() : match.end() + 1] == "…"
            assert digits in (40, 64) or shortened, f"a cut 0x value {match.group()!r} in: {line}"
    said = [line for line in lines if not line.startswith("$ ")]
    printed = [m.group(1) for line in said for m in PRINTED_COMMAND.finditer(line)]
    assert len(printed) >= 5, printed
    for text in printed:
        assert _problem(text.rstrip()) is None, f"the output prints a command that does not run: {text}"
    assert not re.search(r"\[/?(bold|red|green|yellow|dim)\b|\[/\]", transcript), "Rich markup shown as text"
    singular = r"\b1 (jobs|records|batches|receipts|steps)\b"
    assert not re.search(singular, transcript), "a count of 1 with a plural noun"
