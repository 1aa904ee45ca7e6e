"""Parallel corpus from Debian's LibreOffice help packages, aligned by (help page, paragraph id).

Pipeline: apt-get download -> dpkg-deb -x -> parse every HTML help page -> keep sentence-like paragraphs ->
align en-US with de and fr by (page, id) -> clean, dedupe -> split train/dev/test by a hash of the page path
(a page never appears in two splits) -> joint sentencepiece model over the train text -> data/MANIFEST.json.
"""
from __future__ import annotations

import hashlib
import html.parser
import io
import json
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
CACHE = DATA / "cache"
PACKAGES = {"en": "libreoffice-help-en-us", "de": "libreoffice-help-de", "fr": "libreoffice-help-fr"}
HELP_DIRS = {"en": "en-US", "de": "de", "fr": "fr"}
PAIRS = ("en-de", "en-fr")
SPLITS = ("train", "dev", "test")
SPM_PREFIX = "spm"
VOCAB_SIZE = 5000
TAGS = ("<2de>", "<2fr>")  # target-language tag prepended to the source (one multilingual model)
MAX_WORDS = 60
# Split by page: sha256(page) % 100 -> [0, 92) train, [92, 96) dev, [96, 100) test.
DEV_FROM, TEST_FROM = 92, 96
_TEXT_TAGS = {"p", "h1", "h2", "h3", "h4", "h5", "h6"}
_WS = re.compile(r"\s+")


class _HelpPage(html.parser.HTMLParser):
    """Collects {id: text} of id-carrying paragraphs/headings; skips hidden platform variants (MAC...)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paras: dict[str, str] = {}
        self._id: str | None = None
        self._buf: list[str] = []
        self._stack: list[tuple[str, bool]] = []  # (tag, hidden) for elements open inside a paragraph

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if self._id is None:
            if tag in _TEXT_TAGS and a.get("id"):
                self._id, self._buf, self._stack = a["id"], [], []
            return
        if tag in ("br", "img", "input", "wbr", "hr"):  # void elements: no end tag
            return
        # Switch-inline alternatives are all hidden; the "default..." one is what a reader sees.
        hidden = a.get("hidden") is not None and not (a.get("id") or "").startswith("default")
        self._stack.append((tag, hidden))

    def handle_endtag(self, tag):
        if self._id is None:
            return
        if tag in _TEXT_TAGS and not any(t == tag for t, _ in self._stack):
            self.paras.setdefault(self._id, _WS.sub(" ", "".join(self._buf)).strip())
            self._id = None
            return
        while self._stack:
            if self._stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        if self._id is not None and not any(h for _, h in self._stack):
            self._buf.append(data)


def parse_page(path: Path) -> dict[str, str]:
    """{paragraph id: plain text} of one help page."""
    p = _HelpPage()
    p.feed(path.read_text(encoding="utf-8"))
    return p.paras


def sentence_like(en: str, tgt: str) -> bool:
    """Keep real prose: >= 3 words, mostly letters, translated (differs from English), sane length ratio."""
    words = en.split()
    if not 3 <= len(words) <= MAX_WORDS or len(tgt.split()) > 2 * MAX_WORDS:
        return False
    if en == tgt or sum(c.isalpha() for c in en) < 0.6 * len(en):
        return False
    ratio = len(tgt) / len(en)
    return 0.5 <= ratio <= 2.5 and "\t" not in en + tgt


def page_split(page: str) -> str:
    """Deterministic split of a help page by the hash of its path."""
    h = int.from_bytes(hashlib.sha256(page.encode()).digest()[:8], "big") % 100
    return "train" if h < DEV_FROM else "dev" if h < TEST_FROM else "test"


def download(cache: Path = CACHE) -> dict[str, dict]:
    """apt-get download + dpkg-deb -x the three help packages; returns {lang: {package, version, deb, sha256}}."""
    cache.mkdir(parents=True, exist_ok=True)
    info = {}
    for lang, pkg in PACKAGES.items():
        debs = sorted(cache.glob(f"{pkg}_*.deb"))
        if not debs:
            subprocess.run(["apt-get", "download", pkg], cwd=cache, check=True, capture_output=True)
            debs = sorted(cache.glob(f"{pkg}_*.deb"))
        if len(debs) != 1:
            raise ValueError(f"{cache}: expected one {pkg}_*.deb, found {len(debs)}")
        deb = debs[0]
        version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True,
                                 text=True).stdout.strip()
        subprocess.run(["dpkg-deb", "-x", str(deb), str(cache / "x")], check=True)
        info[lang] = {"package": pkg, "version": version, "deb": deb.name,
                      "sha256": hashlib.sha256(deb.read_bytes()).hexdigest()}
    return info


def align(help_root: Path) -> dict[str, list[tuple[str, str, str, str]]]:
    """{pair: [(page, id, en, tgt)]} for every (page, id) present in English and the target language."""
    en_dir = help_root / HELP_DIRS["en"]
    pages = sorted(p.relative_to(en_dir).as_posix() for p in en_dir.rglob("*.html"))
    out: dict[str, list] = {pair: [] for pair in PAIRS}
    for page in pages:
        en = parse_page(en_dir / page)
        for pair in PAIRS:
            tdir = help_root / HELP_DIRS[pair[3:]] / page
            if not tdir.exists():
                continue
            tgt = parse_page(tdir)
            out[pair] += [(page, pid, en[pid], tgt[pid]) for pid in en if pid in tgt]
    return out


def clean_split(rows: list[tuple[str, str, str, str]]) -> dict[str, list[tuple[str, str, str, str]]]:
    """Filter to sentence-like pairs, dedupe, split by page; dev/test drop sources seen in train."""
    seen, splits = set(), {s: [] for s in SPLITS}
    for row in rows:
        _, _, en, tgt = row
        if sentence_like(en, tgt) and (en, tgt) not in seen:
            seen.add((en, tgt))
            splits[page_split(row[0])].append(row)
    train_src = {r[2] for r in splits["train"]}
    for s in ("dev", "test"):
        # Boilerplate repeats across pages: an English source already trained on would flatter BLEU.
        firsts, kept = set(), []
        for r in splits[s]:
            if r[2] not in train_src and r[2] not in firsts:
                firsts.add(r[2])
                kept.append(r)
        splits[s] = kept
    return splits


def write_tsv(path: Path, rows) -> None:
    """page<TAB>id<TAB>en<TAB>target, one pair a line, UTF-8."""
    path.write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")


def read_tsv(path: Path) -> list[tuple[str, str, str, str]]:
    """Rows of a split file written by write_tsv; one-line error naming the file and line when malformed."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: corpus file missing (run `itx data`)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        cols = line.split("\t")
        if len(cols) != 4:
            raise ValueError(f"{path}:{n}: expected 4 tab-separated fields, got {len(cols)}")
        rows.append(tuple(cols))
    return rows


def split_path(split: str, pair: str, data: Path | None = None) -> Path:
    return (DATA if data is None else data) / f"{split}.{pair}.tsv"


def read_split(split: str, pair: str, data: Path | None = None) -> list[tuple[str, str, str, str]]:
    """Rows of a split that is to be evaluated or indexed: an empty split is an error (BLEU of nothing)."""
    path = split_path(split, pair, data)
    rows = read_tsv(path)
    if not rows:
        raise ValueError(f"{path}: the {split} split of {pair} is empty")
    return rows


def train_spm(data: Path = DATA, vocab_size: int = VOCAB_SIZE) -> Path:
    """Joint en+de+fr sentencepiece model over the train split (single-threaded -> deterministic)."""
    import sentencepiece as spm

    text = []
    for pair in PAIRS:
        for _, _, en, tgt in read_tsv(split_path("train", pair, data)):
            text += [en, tgt]
    model = io.BytesIO()  # in memory: a model_prefix path would be recorded in the file, varying by checkout
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text), model_writer=model, vocab_size=vocab_size,
        model_type="unigram", character_coverage=1.0, user_defined_symbols=list(TAGS),
        pad_id=0, unk_id=1, bos_id=2, eos_id=3, num_threads=1, shuffle_input_sentence=False,
        input_sentence_size=0, minloglevel=2)
    path = data / f"{SPM_PREFIX}.model"
    path.write_bytes(model.getvalue())
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(data: Path = DATA, cache: Path = CACHE, log=print) -> dict:
    """Rebuild every corpus file and the manifest; returns the manifest."""
    packages = download(cache)
    rows = align(cache / "x" / "usr" / "share" / "libreoffice" / "help")
    counts, outputs = {}, []
    for pair in PAIRS:
        splits = clean_split(rows[pair])
        for s in SPLITS:
            path = split_path(s, pair, data)
            write_tsv(path, splits[s])
            outputs.append(path)
            counts[f"{s}.{pair}"] = len(splits[s])
            log(f"{path.name}: {len(splits[s])} pairs, {len({r[0] for r in splits[s]})} pages")
    outputs.append(train_spm(data))
    manifest = {
        "source": "Debian bookworm LibreOffice help pages, aligned by (page, paragraph id)",
        "packages": packages, "pairs": counts,
        "split_rule": f"sha256(page) % 100: <{DEV_FROM} train, <{TEST_FROM} dev, else test",
        "spm": {"vocab_size": VOCAB_SIZE, "tags": list(TAGS)},
        "sha256": {p.name: sha256(p) for p in outputs},
    }
    (data / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _ignored(path: Path) -> bool:
    """Is path git-ignored in this checkout (the train splits are not shipped)? False without git."""
    try:
        return subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(path)],
                              capture_output=True).returncode == 0
    except OSError:
        return False


def verify(data: Path | None = None, names: list[str] | None = None) -> tuple[dict, list[str]]:
    """Check the committed files against data/MANIFEST.json; one-line error naming the first bad file or field.
    Returns (manifest, names skipped: absent and git-ignored, i.e. not shipped)."""
    data = DATA if data is None else data
    mpath = data / "MANIFEST.json"
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{mpath}: unreadable manifest ({exc})") from None
    expected = manifest.get("sha256") if isinstance(manifest, dict) else None
    if not isinstance(expected, dict) or not expected:
        raise ValueError(f"{mpath}: field 'sha256' must be a non-empty object of file name -> digest")
    for name, digest in expected.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise ValueError(f"{mpath}: field 'sha256': {name!r} is not a plain file name inside {data}")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(f"{mpath}: field 'sha256.{name}' must be a sha256 hex digest, got {digest!r}")
    skipped = []
    for name in names or sorted(expected):
        if name not in expected:
            raise ValueError(f"{mpath}: lists no file {name!r}")
        path = data / name
        if not path.is_file():
            if _ignored(path):
                skipped.append(name)
                continue
            raise FileNotFoundError(f"{path}: missing (run `itx data`)")
        if sha256(path) != expected[name]:
            raise ValueError(f"{path}: sha256 does not match {mpath.name}")
    return manifest, skipped
