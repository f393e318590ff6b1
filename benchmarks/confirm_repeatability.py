"""Does a confirmation verdict repeat? Today's one-look rule against the sequential rule.

    python benchmarks/seed_spread.py -b configs/cpu_32.yaml --seeds $(seq 11 28) --out OUT \\
        --variant baseline= --variant "winner=losses/KL/start_ramp_it 0.8125 ..."
    python benchmarks/confirm_repeatability.py OUT --repeats 3

Reads each (variant, seed)'s final objective from a `benchmarks/seed_spread.py` output and
splits the seeds into `--repeats` disjoint sets, as if the same confirmation had been run that
many times with different fresh seeds. For each set it replays both rules on the same values
(a confirmation's verdict is a function of its per-seed values): the one-look rule (the first
`--seeds` seeds, Welch 95 %, better / worse / no detectable difference) and the sequential rule
of `sweeps/verdict.py` (rounds of `--seeds` seeds up to `--max-seeds`, Bonferroni level per
look, equivalence within `--margin`). Prints every repeat and how often each rule gave the
same verdict. Not a test: figures for notes.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from sweeps import verdict

ONE_LOOK_WORDS = {verdict.UNDECIDED: "no detectable difference"}


def finals(run_dir: Path, metric: str) -> dict[int, float]:
    """seed -> the last epoch's `metric` of each finished run of one variant."""
    out = {}
    for seed_dir in sorted(run_dir.glob("seed*")):
        lines = (seed_dir / "metrics.jsonl").read_text().splitlines() if (seed_dir / "metrics.jsonl").is_file() else []
        if lines:
            out[int(seed_dir.name[4:])] = float(json.loads(lines[-1])[metric])
    return out


def one_look(cand: list[float], base: list[float], mode: str) -> verdict.Verdict:
    """Today's rule: one look, 95 %, no margin (an open interval is 'no detectable difference')."""
    return verdict.judge(cand, base, mode, margin=0.0, level=verdict.LEVEL)


def sequential(
    cand: list[float], base: list[float], mode: str, margin: float, per_round: int
) -> tuple[verdict.Verdict, int]:
    """The sequential rule on values in seed order: (verdict, seeds used)."""
    rounds = -(-len(cand) // per_round)
    level = verdict.look_level(rounds)
    got = verdict.judge(cand[:per_round], base[:per_round], mode, margin, level)
    for k in range(2, rounds + 1):
        if got.decided:
            return got, per_round * (k - 1)
        got = verdict.judge(cand[: per_round * k], base[: per_round * k], mode, margin, level)
    return got, len(cand)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="a benchmarks/seed_spread.py --out directory")
    p.add_argument("--baseline", default="baseline")
    p.add_argument("--candidate", default="winner")
    p.add_argument("--metric", default="val/transfer/l1")
    p.add_argument("--mode", default="min", choices=("min", "max"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seeds", type=int, default=3, help="seeds per round (the one-look rule uses this many)")
    p.add_argument("--max-seeds", type=int, default=6)
    p.add_argument("--margin", default="1%", help="in the objective's units, or N%% of the baseline's mean")
    args = p.parse_args()
    base_all, cand_all = finals(args.out / args.baseline, args.metric), finals(args.out / args.candidate, args.metric)
    seeds = sorted(set(base_all) & set(cand_all))
    need = args.repeats * args.max_seeds
    if len(seeds) < need:
        raise SystemExit(f"{len(seeds)} seeds trained for both, {need} needed ({args.repeats} x {args.max_seeds})")
    print(f"{args.metric}, {len(seeds)} seeds per config: baseline {_spread(base_all)}, candidate {_spread(cand_all)}")
    print("repeat  seeds        one look (3 seeds, 95%)                 sequential (margin, Bonferroni)")
    old, new = [], []
    for r in range(args.repeats):
        chunk = seeds[r * args.max_seeds : (r + 1) * args.max_seeds]
        base, cand = [base_all[s] for s in chunk], [cand_all[s] for s in chunk]
        first = one_look(cand[: args.seeds], base[: args.seeds], args.mode)
        relative = args.margin.endswith("%")
        margin = (
            float(args.margin.rstrip("%")) / 100 * abs(sum(base[: args.seeds]) / args.seeds)
            if relative
            else float(args.margin)
        )
        got, used = sequential(cand, base, args.mode, margin, args.seeds)
        old.append(ONE_LOOK_WORDS.get(first.word, first.word))
        new.append(got.word if got.word != verdict.EQUIVALENT else f"equivalent within ±{margin:.2g}")
        print(
            f"{r + 1:<6}  {chunk[0]}-{chunk[-1]:<9}  {first.delta:+.4f} [{first.ci[0]:+.4f}, {first.ci[1]:+.4f}] "
            f"{old[-1]:<26}  {got.delta:+.4f} [{got.ci[0]:+.4f}, {got.ci[1]:+.4f}] {new[-1]} ({used} seeds)"
        )
    for name, words in (("one look", old), ("sequential", new)):
        word, count = Counter(words).most_common(1)[0]
        print(f"{name}: the same verdict in {count} of {len(words)} repeats ({word}); verdicts: {', '.join(words)}")


def _spread(values: dict[int, float]) -> str:
    import statistics

    v = list(values.values())
    return f"{statistics.fmean(v):.4f} +- {statistics.stdev(v):.4f}"


if __name__ == "__main__":
    main()
