"""itx.train pieces that decide what gets committed: the plateau rule and checkpoint export (needs the train extra)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from itx import train  # noqa: E402
from itx.golden import model as gm  # noqa: E402


def test_plateau_rule_needs_min_steps_and_compares_the_last_fifth_with_the_best_before():
    falling = [(s, 3.0 - 0.1 * i) for i, s in enumerate(range(500, 5001, 500))]
    assert not train.plateaued(falling, min_steps=1000)                 # 3% better in the last 20%: go on
    flat = [(s, 2.0 if s <= 4000 else 1.99) for s in range(500, 5001, 500)]
    assert train.plateaued(flat, min_steps=1000)                        # 0.5% < 1%: stop
    assert not train.plateaued(flat, min_steps=8000)                    # but not before --min-steps
    worse = [(s, 2.0 if s <= 4000 else 2.5) for s in range(500, 5001, 500)]
    assert train.plateaued(worse, min_steps=1000)


def _tiny_model(seed: int) -> "train.Transformer":
    torch.manual_seed(seed)
    return train.Transformer(train.config_for("integer", 64))


def test_a_snapshot_and_a_full_checkpoint_export_the_same_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "reference_logits", lambda out: out)     # needs the real tokenizer and data
    model = _tiny_model(3)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save({"model": weights, "step": 7}, tmp_path / "ckpt.pt")
    torch.save(weights, tmp_path / "step000007.pt")
    a = train.export_checkpoint("integer", tmp_path / "ckpt.pt", tmp_path / "a")
    b = train.export_checkpoint("integer", tmp_path / "step000007.pt", tmp_path / "b")
    wa, wb = (np.load(d / gm.WEIGHTS) for d in (a, b))
    assert sorted(wa.files) == sorted(weights) and all(np.array_equal(wa[k], wb[k]) for k in wa.files)
    assert np.abs(wa["embed"]).max() > 0                               # real weights, not zeros


@pytest.mark.parametrize("content, needle", [(b"not a checkpoint", "not a readable torch checkpoint"),
                                             (None, "no 'embed' weights")])
def test_a_file_that_is_no_checkpoint_is_a_one_line_error(tmp_path, content, needle):
    bad = tmp_path / "bad.pt"
    if content is None:
        torch.save({"step": 1}, bad)
    else:
        bad.write_bytes(content)
    with pytest.raises(ValueError, match=needle):
        train.export_checkpoint("integer", bad, tmp_path / "out")


def test_cooldown_decays_linearly_to_zero_over_the_last_steps_only():
    f = [train.lr_factor(s, 200, 1000, 400) for s in (0, 199, 600, 800, 1000)]
    plain = [train.lr_factor(s, 200, 1000) for s in (0, 199, 600, 800, 1000)]
    assert f[:3] == plain[:3] and f[3] == plain[3] / 2 and f[4] == 0.0
    assert plain[4] > 0


def test_a_cooldown_that_would_rewrite_the_past_is_refused(tmp_path):
    from itx.cli import main

    assert main(["train", "--model", "integer", "--steps", "10", "--cooldown", "11", "--run-dir", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2
