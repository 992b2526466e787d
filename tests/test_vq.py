"""The optional learned VQ (`cotlab.policy.vq`) on a tiny config: training lowers the loss, the saved directory loads
through transformers and `load_vq_tokenizer`, runs are deterministic and resume exactly, `decode(encode(x))` is the
training-time reconstruction, and the round-trip evaluation reports fractions."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import JanusVQVAE

from cotlab import world as w
from cotlab.policy.tokenizers import ImageTokenizer
from cotlab.policy.vq import (
    VQ_TIERS, VQTrainConfig, build_vq, evaluate_vq, images_to_pixels, load_vq_tokenizer, reconstruct, train_vq,
    vq_config,
)

# 4 steps of 2 scenes: step 1 unquantised, k-means at step 2, checkpoints after steps 2 (and the end)
CFG = replace(VQ_TIERS["tiny"], steps=4, batch_size=2, codebook_size=32, warmup_steps=1, kmeans_batches=1,
              kmeans_iters=2, dead_after=1, checkpoint_every=2, eval_scenes=4)


def weights(path):
    return load_file(path / "model.safetensors")


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vq_a")
    return out, train_vq(CFG, out, progress=False)


@pytest.fixture(scope="module")
def tokenizer(run):
    return load_vq_tokenizer(run[0])


def scenes_images(n, seed):
    rng = np.random.default_rng(seed)
    scenes = [w.random_scene(rng) for _ in range(n)]
    return scenes, [w.render(s) for s in scenes]


def test_training_lowers_the_loss_and_writes_metrics(run, tokenizer):
    out, metrics = run
    assert len(metrics["history"]) == CFG.steps
    # on fixed scenes (batch losses are noisy), the trained VQ's round trip beats the untrained one's
    _, images = scenes_images(8, seed=7)
    pixels = images_to_pixels(np.stack([np.asarray(im) for im in images]))
    with torch.no_grad():
        before = torch.nn.functional.mse_loss(reconstruct(build_vq(CFG), pixels)["recon"], pixels).item()
        after = torch.nn.functional.mse_loss(reconstruct(tokenizer.vqmodel, pixels)["recon"], pixels).item()
    assert after < 0.75 * before
    assert metrics["steps"] == CFG.steps and metrics["train_seconds"] > 0
    assert set(metrics["final"]) == {"loss", "mse", "l1", "commit"}
    assert (out / "metrics.json").is_file() and (out / "checkpoint.pt").is_file()
    assert not list(out.glob(".*tmp*"))  # atomic writes leave no temporaries


def test_saved_directory_loads_with_transformers(run):
    out, _ = run
    model = JanusVQVAE.from_pretrained(out, local_files_only=True)
    assert model.config.num_embeddings == CFG.codebook_size and model.config.num_patches == 8
    assert (out / "model.safetensors").is_file()
    # the codebook stays on the unit sphere, so `decode`'s L2 normalisation changes nothing
    norms = model.quantize.embedding.weight.norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)


def test_tokenizer_round_trip_shapes(tokenizer):
    assert isinstance(tokenizer, ImageTokenizer)
    assert tokenizer.codebook_size == CFG.codebook_size and tokenizer.num_tokens == 64
    _, images = scenes_images(3, seed=1)
    codes = tokenizer.encode(images)
    assert codes.shape == (3, 64) and codes.dtype == torch.long
    assert 0 <= int(codes.min()) and int(codes.max()) < CFG.codebook_size
    decoded = tokenizer.decode(codes)
    assert len(decoded) == 3
    assert all(isinstance(im, Image.Image) and im.mode == "RGB" and im.size == (64, 64) for im in decoded)


def test_decode_of_encode_is_the_training_reconstruction(tokenizer):
    _, images = scenes_images(4, seed=2)
    codes = tokenizer.encode(images)
    model = tokenizer.vqmodel
    pixels = images_to_pixels(np.stack([np.asarray(im) for im in images]))
    with torch.no_grad():
        train_time = reconstruct(model, pixels)
        decoded = model.decode(codes)
    assert torch.equal(train_time["indices"].view(4, -1), codes)
    assert (train_time["recon"] - decoded).abs().max().item() < 1e-5


def test_same_seed_same_weights(run, tmp_path):
    train_vq(CFG, tmp_path, progress=False)
    assert_same_weights(run[0], tmp_path)


def test_killed_run_resumes_to_the_same_weights(run, tmp_path):
    # "killed" after step 3: the last checkpoint is from step 2, so the rerun redoes step 3
    assert train_vq(CFG, tmp_path, progress=False, stop_at=3) is None
    assert not (tmp_path / "model.safetensors").exists()
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 2
    metrics = train_vq(CFG, tmp_path, progress=False)
    assert_same_weights(run[0], tmp_path)
    assert [h["loss"] for h in metrics["history"]] == [h["loss"] for h in run[1]["history"]]


def test_checkpoint_of_another_config_is_refused(run, tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes((run[0] / "checkpoint.pt").read_bytes())
    with pytest.raises(ValueError, match="different config"):
        train_vq(replace(CFG, lr=CFG.lr / 2), tmp_path, progress=False)


def test_evaluation_reports_fractions(run, tokenizer):
    result = evaluate_vq(tokenizer.vqmodel, num_scenes=5, seed=3)
    for key in ("exact_scene", "object_recall", "no_object", "patch_accuracy", "codebook_usage"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["num_scenes"] == 5 and result["mse"] >= 0 and result["psnr_db"] > 0
    assert result["codes_used"] == round(result["codebook_usage"] * CFG.codebook_size)
    assert 0.0 <= run[1]["evaluation"]["object_recall"] <= 1.0


def test_evaluation_scores_a_perfect_round_trip_as_perfect(tokenizer, monkeypatch):
    # a tokenizer that returns the input image untouched must score 1 on every agreement measure
    from cotlab.policy import vq

    class Identity:
        def __init__(self, *args, **kwargs):
            pass

        def encode(self, images):
            self.images = images
            return torch.zeros(len(images), 64, dtype=torch.long)

        def decode(self, codes):
            return self.images

    monkeypatch.setattr(vq, "JanusVQTokenizer", Identity)
    result = evaluate_vq(tokenizer.vqmodel, num_scenes=6, seed=4)
    assert result["exact_scene"] == result["object_recall"] == result["patch_accuracy"] == 1.0
    assert result["no_object"] == 0.0 and result["spurious_objects"] == 0.0 and result["mse"] == 0.0


def test_config_validation_and_vq_config():
    with pytest.raises(ValueError, match="multiple of 32"):
        VQTrainConfig(base_channels=48)
    with pytest.raises(ValueError, match="3 downsamplings"):
        VQTrainConfig(channel_multiplier=(1, 1, 1))
    with pytest.raises(ValueError, match="num_res_blocks=0"):
        VQTrainConfig(channel_multiplier=(1, 1, 2, 2), num_res_blocks=0)
    c = vq_config(VQ_TIERS["default"])
    assert c.num_embeddings == 751 and c.num_patches == 8 and len(c.channel_multiplier) == 4


def test_load_refuses_a_directory_without_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_vq_tokenizer(tmp_path)


def test_cached_training_goes_through_the_run_store(tmp_path, monkeypatch):
    from cotlab.policy import vq
    from cotlab.store import RunStore

    monkeypatch.setitem(vq.VQ_TIERS, "tiny", CFG)
    store = RunStore(tmp_path)
    path = vq.train_vq_cached("tiny", store=store, progress=False)
    assert load_vq_tokenizer(path).codebook_size == CFG.codebook_size
    assert store.verify(path.parent)  # the model sits in vq/ of a verified run directory
    monkeypatch.setattr(vq, "train_vq", lambda *a, **k: pytest.fail("retrained a cached VQ"))
    assert vq.train_vq_cached("tiny", store=store, progress=False) == path
    with pytest.raises(ValueError, match="unknown VQ preset"):
        vq.train_vq_cached("huge", store=store)
