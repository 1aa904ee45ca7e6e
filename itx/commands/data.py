"""`itx data`: rebuild the en-de/en-fr corpus, the sentencepiece model and data/MANIFEST.json."""
from __future__ import annotations


def _run(args) -> int:
    from itx import data

    if args.verify:
        manifest, skipped = data.verify()
        note = f"; {len(skipped)} git-ignored files not shipped, skipped: {', '.join(skipped)}" if skipped else ""
        print(f"{len(manifest['sha256']) - len(skipped)} files match data/MANIFEST.json{note}")
        return 0
    data.build()
    print("wrote data/MANIFEST.json")
    return 0


def register(sub) -> None:
    p = sub.add_parser("data", help="download LibreOffice help packages, build corpus splits + sentencepiece")
    p.add_argument("--verify", action="store_true", help="only check committed files against the manifest")
    p.set_defaults(func=_run)
