"""``vunet-data``: generate people, convert an original index.p, prepare the cache, render a preview.

    vunet-data synth --out DIR --size 64 --identities 48 --poses 12 --val-identities 8 --seed 0 [--background studio] [--clothes plain]
    vunet-data convert DIR/index.p --allow-pickle   # writes DIR/index.json (no pickle needed afterwards)
    vunet-data prepare [-b CFG.yaml ...] [PATH VALUE ...]   # check data, generate if needed, build cache
    vunet-data preview --out docs/generated_people.png [-b CFG.yaml ...] [PATH VALUE ...]

User errors (bad data, config or arguments) print one line and exit with status 2.
Loading a pickle runs code, so ``convert`` reads one only with ``--allow-pickle``
(pass it for a trusted file, such as the original dataset's index.p).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from vunet_core.config import Config, ConfigError, known_paths, resolve_config
from vunet_core.data.errors import DataError
from vunet_core.paths import PathsError, parse_overrides, split_config_files


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vunet-data", description="Data tools for VUNet sweeps")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("synth", help="generate the synthetic people dataset")
    s.add_argument("--out", required=True, type=Path, help="output directory (must not exist or be empty)")
    s.add_argument("--size", type=int, default=64, help="image side in pixels")
    s.add_argument("--identities", type=int, default=48, help="number of people")
    s.add_argument("--poses", type=int, default=12, help="images per person")
    s.add_argument("--val-identities", type=int, default=8, help="people held out for validation")
    s.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    s.add_argument("--background", default="scene", help="scene (per-person wall and floor) or studio (plain, shared)")
    s.add_argument("--clothes", default="varied", help="varied (patterned shirts) or plain (one strong colour each)")
    c = sub.add_parser("convert", help="convert an original index.p to index.json")
    c.add_argument("index", type=Path, help="path to index.p")
    c.add_argument("--out", type=Path, default=None, help="output file (default: index.json beside it)")
    c.add_argument("--allow-pickle", action="store_true", help="unpickle the file (runs its code: trusted files only)")
    for name, text in (
        ("prepare", "check the data, generate if needed, build the cache"),
        ("preview", "render a picture grid"),
    ):
        q = sub.add_parser(name, help=text)
        # PATH VALUE overrides (e.g. data/root /data/market or --data/root ...) arrive as unknown args.
        q.add_argument("-b", "--base", nargs="*", default=[], help="config YAML files (later wins)")
        if name == "preview":
            q.add_argument("--out", type=Path, required=True, help="PNG file to write")
            q.add_argument("--split", choices=("train", "val"), default="val")
            q.add_argument("--people", type=int, default=4)
            q.add_argument("--poses", type=int, default=4)
    for q in sub.choices.values():
        q.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def _config(args: argparse.Namespace, extra: Sequence[str]) -> Config:
    files, swallowed = split_config_files(
        args.base, known_paths()
    )  # `-b a.yaml data/root DIR`: -b took the override too
    return resolve_config(files, parse_overrides([*swallowed, *extra]))


def _run(args: argparse.Namespace, extra: Sequence[str]) -> None:
    from vunet_core.data import convert_pickle, generate_people, prepare_data
    from vunet_core.data.preview import write_preview
    from vunet_core.data.synthetic import synthetic_settings

    progress = not args.no_progress
    if args.command == "synth":
        start = time.perf_counter()
        n = args.identities * args.poses
        flags = {
            "num_identities": args.identities,
            "poses_per_identity": args.poses,
            "val_identities": args.val_identities,
            "seed": args.seed,
            "background": args.background,
            "clothes": args.clothes,
        }
        settings = synthetic_settings(args.size, flags)
        index = generate_people(settings, out=args.out, size=args.size, progress=progress)
        seconds = time.perf_counter() - start
        print(f"wrote {n} images of {args.identities} people to {index.parent} ({n / seconds:.0f} images/s)")
    elif args.command == "convert":
        if not args.allow_pickle:
            raise DataError(f"{args.index}: a pickle runs code when loaded; pass --allow-pickle if the file is trusted")
        print(f"wrote {convert_pickle(args.index, args.out)}")
    elif args.command == "prepare":
        splits = prepare_data(_config(args, extra), progress, report=print)
        print(
            f"train: {len(splits.train)} images; val: {len(splits.val)} transfer pairs; appearance {splits.train.appearance_shape}"
        )
    else:
        out = write_preview(_config(args, extra), args.out, args.split, args.people, args.poses, progress)
        print(f"wrote {out}")


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit status."""
    args, extra = _parser().parse_known_args(argv)
    if extra and args.command in ("synth", "convert"):
        print(f"vunet-data {args.command}: unrecognized arguments: {' '.join(extra)}", file=sys.stderr)
        return 2
    try:
        _run(args, extra)
    except (ConfigError, PathsError) as exc:  # DataError is a ConfigError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
