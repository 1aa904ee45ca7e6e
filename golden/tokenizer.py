"""Sentencepiece wrapper shared by training and inference: target-language tag + pieces + EOS."""
from __future__ import annotations

from pathlib import Path

import sentencepiece as spm

ROOT = Path(__file__).resolve().parent.parent
SPM_MODEL = ROOT / "data" / "spm.model"
PAD, UNK, BOS, EOS = 0, 1, 2, 3
LANGS = ("de", "fr")


def checked_text(text: str) -> str:
    """A sentence to encode: a non-blank string of valid UTF-8 (command-line bytes that are not UTF-8 arrive as
    surrogate escapes; sentencepiece would fail on them, and an empty sentence would 'translate' to a word)."""
    if not isinstance(text, str):
        raise ValueError(f"sentence must be a string, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"sentence {text!r}: not valid UTF-8 (byte at character {exc.start})") from None
    if not text.strip():
        raise ValueError(f"sentence {text!r}: empty")
    return text


class Tokenizer:
    """Joint en/de/fr subwords; the source starts with <2de>/<2fr> to pick the output language."""

    def __init__(self, path: Path | str = SPM_MODEL) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: sentencepiece model missing (run `itx data`)")
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.load(str(path))
        except (OSError, RuntimeError) as exc:
            raise ValueError(f"{path}: corrupt sentencepiece model ({str(exc).splitlines()[0]})") from None
        self.tags = {lang: self.sp.piece_to_id(f"<2{lang}>") for lang in LANGS}
        if UNK in self.tags.values() or (self.sp.pad_id(), self.sp.bos_id(), self.sp.eos_id()) != (PAD, BOS, EOS):
            raise ValueError(f"{path}: not an itx sentencepiece model (language tags / special ids differ)")

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode_source(self, text: str, to: str) -> list[int]:
        if to not in self.tags:
            raise ValueError(f"target language must be one of {LANGS}, got {to!r}")
        return [self.tags[to]] + self.sp.encode(checked_text(text)) + [EOS]

    def encode_target(self, text: str) -> list[int]:
        return self.sp.encode(checked_text(text)) + [EOS]

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids]
        if EOS in ids:
            ids = ids[: ids.index(EOS)]
        return self.sp.decode([i for i in ids if i not in (PAD, BOS)])
