#!/usr/bin/env python3
"""Check a finished `snakemake --executor slurm` run from its log, squeue and scontrol.

    python .ci/slurm/check_run.py --log controller-1.log [--log controller-2.log ...]
                                  --workdir DIR [--cancelled FILE] [--killed FILE]
                                  [--partial-glob '*.tmp' ...]

The logs are those of one run's controllers, in order (each one after a killed one resumed
the run). Prints one line per job (rule, wildcards, Snakemake job id, SLURM job ids, GPUs
asked, SLURM state), then checks, failing loudly (exit 1) on the first broken one:

1. the run completed (`N of N steps (100%) done` in the last log);
2. every non-local job of the last log was submitted to SLURM and finished;
3. every job whose resources include gpu>=1 asked SLURM for a GPU (scontrol's TresPerJob /
   TresPerNode / TRES shows gres:gpu or gres/gpu) on partition `gpu`, and every other job
   asked for none, on partition `cpu`; no job was charged to an account (the CI cluster,
   like a site without accounts, has none);
4. with --cancelled (the record of fault_test.sh): the cancelled SLURM job failed as
   CANCELLED, Snakemake restarted it under a new SLURM job id and that attempt finished;
5. with --killed (controller id|running jobs, from run_stage.sh): no job that finished under
   an earlier controller ran again under a later one, and the jobs that were running when
   the controller was killed were redone (unless their own SLURM log shows they ran to the
   end before the cancel took effect: then Snakemake recorded them complete);
6. nothing partial is left in the work directory: no file matches --partial-glob (default
   *.tmp, *.tmp.*, *.partial) and .snakemake/incomplete is empty.

Needs the SLURM controller still up (finished jobs stay visible for MinJobAge=3600 s).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

RULE_RE = re.compile(r"^(local)?rule (\S+):$")
FIELD_RE = re.compile(r"^\s+(jobid|wildcards|resources|external_jobid|message|output): (.*)$")
SUBMIT_RE = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)(?: \(log: (\S+)\))?")
ARRAY_RE = re.compile(r"Submitted array job with Snakemake IDs ([\d,]+) and SLURM job ID (\d+)")
FINISHED_RE = re.compile(r"Finished jobid: (\d+) \(Rule: (\S+)\)")
RESTART_RE = re.compile(r"Trying to restart job (\d+)\.")
DONE_RE = re.compile(r"(\d+) of (\d+) steps \(100%\) done|Nothing to be done")
GPU_TRES_RE = re.compile(r"(?:TresPerJob|TresPerNode|TRES|TresPerTask)=\S*gres[:/]gpu")


@dataclass
class Job:
    jobid: int
    rule: str
    local: bool
    wildcards: str = ""
    outputs: tuple[str, ...] = ()
    gpus: int = 0
    slurm_ids: list[str] = field(default_factory=list)
    slurm_logs: dict[str, str] = field(default_factory=dict)  # SLURM job id -> its log
    finished: bool = False
    errors: list[tuple[str, str]] = field(default_factory=list)  # (external id, message)
    restarted: int = 0


def fail(msg: str) -> None:
    print(f"[slurm-ci] CHECK FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def record_submit(job: Job, m: re.Match) -> None:
    job.slurm_ids.append(m.group(2))
    if m.group(3):
        job.slurm_logs[m.group(2)] = m.group(3).rstrip(").")


def finished_inside(job: Job) -> bool:
    """Whether the job's last SLURM job ran it to the end (its own Snakemake said so in its
    SLURM log), e.g. a job that completed in the seconds before its cancel took effect."""
    log = job.slurm_logs.get(job.slurm_ids[-1]) if job.slurm_ids else None
    return bool(log) and Path(log).is_file() and "(100%) done" in Path(log).read_text()


def parse_log(text: str) -> tuple[dict[int, Job], bool]:
    jobs: dict[int, Job] = {}
    block: dict[str, str] | None = None
    block_kind: tuple[str, bool] | None = None  # (rule, local) for "rule X:" blocks
    in_error: str | None = None
    done = False

    def close_block() -> None:
        nonlocal block, block_kind, in_error
        if block is not None and "jobid" in block:
            jid = int(block["jobid"])
            if block_kind is not None:
                rule, local = block_kind
                job = jobs.setdefault(jid, Job(jid, rule, local))
                job.wildcards = block.get("wildcards", job.wildcards)
                if "output" in block:
                    job.outputs = tuple(block["output"].split(", "))
                gpu = re.search(r"(?:^|, )gpus?=(\d+)", block.get("resources", ""))
                job.gpus = int(gpu.group(1)) if gpu else 0
            elif in_error is not None and jid in jobs:
                jobs[jid].errors.append((block.get("external_jobid", ""), block.get("message", "")))
        block, block_kind, in_error = None, None, None

    lines = text.splitlines()
    skip = ""  # while inside an embedded log: its closing line of '='
    for i, line in enumerate(lines):
        # `show-failed-logs` embeds the failed job's logs (with the inner Snakemake's own
        # "rule X:" blocks) between two lines of '='; they are not jobs of this run.
        if skip:
            if line == skip:
                skip = ""
            continue
        if (
            line.startswith("Logfile ")
            and line.endswith(":")
            and i + 1 < len(lines)
            and lines[i + 1]
            and set(lines[i + 1]) == {"="}
        ):
            close_block()
            skip = lines[i + 1]
            lines[i + 1] = ""  # the opening line; the next identical one closes the block
            continue
        m = RULE_RE.match(line)
        if m:
            close_block()
            block, block_kind = {}, (m.group(2), bool(m.group(1)))
            continue
        if line.startswith("Error in rule "):
            close_block()
            block, in_error = {}, line
            continue
        m = FIELD_RE.match(line)
        if m and block is not None:
            block.setdefault(m.group(1), m.group(2).strip())
            continue
        if line and not line.startswith((" ", "\t")):
            close_block()
        if m := ARRAY_RE.search(line):
            for task, jid in enumerate(m.group(1).split(","), start=1):
                if int(jid) in jobs:
                    jobs[int(jid)].slurm_ids.append(f"{m.group(2)}_{task}")
        for regex, action in (
            (SUBMIT_RE, lambda job, m: record_submit(job, m)),
            (FINISHED_RE, lambda job, m: setattr(job, "finished", True)),
            (RESTART_RE, lambda job, m: setattr(job, "restarted", job.restarted + 1)),
        ):
            m = regex.search(line)
            if m and int(m.group(1)) in jobs:
                action(jobs[int(m.group(1))], m)
        if DONE_RE.search(line):
            done = True
    close_block()
    return jobs, done


def scontrol_job(slurm_id: str) -> str:
    res = subprocess.run(
        ["scontrol", "show", "job", "-o", slurm_id], capture_output=True, text=True
    )
    return res.stdout if res.returncode == 0 else ""


def squeue_states() -> dict[str, str]:
    res = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i|%T"], capture_output=True, text=True
    )
    out = {}
    for line in res.stdout.splitlines():
        jid, _, state = line.partition("|")
        out[jid.strip()] = state.strip()
    return out


def job_line(job: Job, states: dict[str, str]) -> str:
    ids = ",".join(f"{s}:{states.get(s, '?')}" for s in job.slurm_ids) or "-"
    wc = job.wildcards or "-"
    return f"  {job.rule:<18} {wc:<28} smk={job.jobid:<4} gpu={job.gpus} slurm={ids}"


def check_slurm_requests(jobs: list[Job]) -> None:
    """3. GPU request, partition and account of every SLURM job of the run (all attempts)."""
    for job in jobs:
        for sid in job.slurm_ids:
            info = scontrol_job(sid)
            if not info:
                fail(f"scontrol does not know SLURM job {sid} ({job.rule}) any more")
            record = info
            if "_" in sid:  # array task: pick its own record if scontrol lists the whole array
                array_id, task = sid.split("_", 1)
                key = f"ArrayJobId={array_id} ArrayTaskId={task} "
                record = next((r for r in info.splitlines() if key in r), info)
            what = f"{job.rule} [{job.wildcards}] (SLURM job {sid})"
            asked = bool(GPU_TRES_RE.search(record))
            if job.gpus and not asked:
                fail(f"{what} has gpu={job.gpus} but asked for no GPU:\n{record}")
            if not job.gpus and asked:
                fail(f"{what} has no gpu resource but asked for a GPU")
            part = re.search(r" Partition=(\S+)", record)
            want = "gpu" if job.gpus else "cpu"
            if not part or part.group(1) != want:
                fail(f"{what} ran on partition {part and part.group(1)}, not {want}")
            account = re.search(r" Account=(\S*)", record)
            if account and account.group(1) not in ("", "(null)"):
                fail(f"{what} was charged to account {account.group(1)}")


def check_resume(logs: list[dict[int, Job]], killed: Path) -> None:
    """5. After each controller kill: nothing finished redone, the running jobs redone."""
    ctl, _, running = killed.read_text().strip().partition("|")
    running_ids = {r.split(":")[0] for r in running.split()}
    for before, after in zip(logs, logs[1:]):
        done_outputs = {o for j in before.values() if j.finished for o in j.outputs}
        later_outputs = {o for j in after.values() for o in j.outputs}
        redone = sorted(done_outputs & later_outputs)
        if redone:
            fail(f"outputs finished before the controller was killed were made again: {redone[:5]}")
        cut = [j for j in before.values() if set(j.slurm_ids) & running_ids and not j.finished]
        if not cut:
            fail(f"none of the jobs running when controller {ctl} was killed ({running}) is known")
        kept = [j for j in cut if not set(j.outputs) & later_outputs]
        missing = sorted(o for j in kept if not finished_inside(j) for o in j.outputs)
        if missing:
            fail(f"outputs of jobs cut off by the controller kill were not redone: {missing[:5]}")
        print(
            f"[slurm-ci] ok: controller {ctl} killed with {len(cut)} job(s) running: "
            + ", ".join(f"{j.rule} [{j.wildcards or '-'}]" for j in cut)
            + f"; redone by the next controller: {len(cut) - len(kept)}, finished inside their "
            f"SLURM job before the cancel took effect (kept): {len(kept)}; none of the "
            f"{sum(j.finished for j in before.values())} finished jobs redone"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, action="append", required=True)
    ap.add_argument("--workdir", type=Path, default=Path("."))
    ap.add_argument("--cancelled", type=Path, default=None)
    ap.add_argument("--killed", type=Path, default=None)
    ap.add_argument("--partial-glob", action="append", default=None)
    args = ap.parse_args()

    parsed = [parse_log(log.read_text(errors="replace")) for log in args.log]
    logs = [jobs for jobs, _ in parsed]
    remote = [j for jobs in logs for j in jobs.values() if not j.local]
    last = [j for j in logs[-1].values() if not j.local]
    states = squeue_states()

    print(
        f"[slurm-ci] SLURM jobs of this run ({len(remote)} Snakemake jobs, "
        f"{len(logs)} controller(s)):"
    )
    for job in sorted(remote, key=lambda j: (j.rule, j.wildcards)):
        print(job_line(job, states))

    # 1. completed
    if not parsed[-1][1]:
        fail("the run did not report '(100%) done'")
    # 2. every non-local job went through SLURM
    missing = [j for j in last if not j.slurm_ids]
    if missing:
        fail("jobs without a SLURM job id: " + ", ".join(f"{j.rule}[{j.jobid}]" for j in missing))
    unfinished = [j for j in last if not j.finished]
    if unfinished:
        fail("jobs never finished: " + ", ".join(f"{j.rule}[{j.jobid}]" for j in unfinished))
    # 3. GPU requests, partitions, accounts
    check_slurm_requests(remote)
    n_gpu = sum(1 for j in remote if j.gpus)
    print(
        f"[slurm-ci] ok: {len(remote)} jobs ran as SLURM jobs; {n_gpu} GPU jobs asked for a GPU "
        "on partition gpu, the others for none on partition cpu; no account"
    )
    # 4. fault injection
    if args.cancelled is not None:
        if not args.cancelled.is_file() or not args.cancelled.read_text().strip():
            fail(f"no cancelled job recorded in {args.cancelled} (fault injection did not fire)")
        cancelled = args.cancelled.read_text().strip().split("|")[0]
        owner = next((j for j in remote if cancelled in j.slurm_ids), None)
        if owner is None:
            fail(f"cancelled SLURM job {cancelled} belongs to no job of this run")
        if not any(ext == cancelled.split("_")[0] or ext == cancelled for ext, _ in owner.errors):
            fail(f"Snakemake reported no failure for cancelled SLURM job {cancelled}")
        if "CANCELLED" not in " ".join(msg for _, msg in owner.errors):
            fail(f"failure of SLURM job {cancelled} was not reported as CANCELLED")
        retry_ids = owner.slurm_ids[owner.slurm_ids.index(cancelled) + 1 :]
        if not owner.restarted or not retry_ids or not owner.finished:
            fail(f"cancelled job {owner.rule} [{owner.wildcards}] was not retried to completion")
        print(
            f"[slurm-ci] ok: cancelled SLURM job {cancelled} ({owner.rule} "
            f"[{owner.wildcards or '-'}]) -> retried as SLURM job {retry_ids[-1]}: "
            f"{states.get(retry_ids[-1], '?')}"
        )
    # 5. controller killed and resubmitted
    if args.killed is not None:
        if len(logs) < 2:
            fail("--killed given with a single controller log")
        check_resume(logs, args.killed)
    # 6. nothing partial left
    globs = args.partial_glob or ["*.tmp", "*.tmp.*", "*.partial"]
    leftovers = sorted(
        p
        for g in globs
        for p in args.workdir.rglob(g)
        if ".snakemake" not in p.relative_to(args.workdir).parts
    )
    if leftovers:
        fail("partial files left: " + ", ".join(str(p) for p in leftovers[:20]))
    incomplete = args.workdir / ".snakemake" / "incomplete"
    if incomplete.is_dir() and any(incomplete.iterdir()):
        fail(f"Snakemake still marks outputs incomplete: {sorted(incomplete.iterdir())[:5]}")
    print(f"[slurm-ci] ok: no partial output under {args.workdir} ({', '.join(globs)})")


if __name__ == "__main__":
    main()
