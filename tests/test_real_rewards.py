"""CLIPScore and the VLM judge on tiny random checkpoints built here and saved to disk (no hub, no torchvision),
against hand computations from the models' own outputs."""
import pytest
import torch
from PIL import Image
from transformers import CLIPModel, CLIPProcessor

from cotlab import rewards
from cotlab.rewards import CLIPScore, VLMJudge, get
from cotlab.experiments.stand_ins import tiny_judge
from cotlab.rewards.real import ORM_QUESTION, UNIFIED_REWARD_QUESTION, parse_score

PROMPTS = ["a red circle", "two blue squares", "a green star left of a cat", "nothing", "a yellow dog"]


def images(n):
    """Images of different sizes and colours, so that batches are padded."""
    return [Image.new("RGB", (32 + 8 * (i % 3), 32 + 4 * i), (60 * i % 256, 255 - 40 * i, 90)) for i in range(n)]


def test_clipscore_is_2_5_times_the_clipped_cosine_of_the_models_embeddings(clip_dir):
    rm = get("clipscore", path=clip_dir)
    assert isinstance(rm, CLIPScore) and rm.name == "clipscore"
    scores = rm(PROMPTS, images(5))
    assert scores.shape == (5,) and scores.dtype == torch.float32 and torch.isfinite(scores).all()

    model, processor = CLIPModel.from_pretrained(clip_dir).eval(), CLIPProcessor.from_pretrained(clip_dir)
    with torch.no_grad():
        inputs = processor(text=PROMPTS, images=images(5), return_tensors="pt", padding=True)
        image = model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
        text = model.get_text_features(input_ids=inputs["input_ids"],
                                       attention_mask=inputs["attention_mask"]).pooler_output
    cosine = ((image / image.norm(dim=-1, keepdim=True)) * (text / text.norm(dim=-1, keepdim=True))).sum(-1)
    assert (cosine < 0).any() and (cosine > 0).any()  # so the max(., 0) is exercised
    torch.testing.assert_close(scores, 2.5 * cosine.clamp(min=0), atol=1e-5, rtol=1e-5)

    torch.testing.assert_close(get("clipscore", path=clip_dir, weight=1.0)(PROMPTS, images(5)), scores / 2.5)
    around = CLIPScore(model, processor)  # built around a loaded model and processor
    torch.testing.assert_close(around(PROMPTS, images(5)), scores)


def test_clipscore_does_not_depend_on_the_batch_size(clip_dir):
    one = get("clipscore", path=clip_dir, batch_size=1)(PROMPTS, images(5))
    four = get("clipscore", path=clip_dir, batch_size=4)(PROMPTS, images(5))
    torch.testing.assert_close(one, four, atol=1e-5, rtol=1e-5)
    assert get("clipscore", path=clip_dir)([], []).shape == (0,)


@pytest.fixture(scope="module", params=["qwen2_5_vl", "llava_onevision"])
def judge_dir(request, tmp_path_factory):
    return tiny_judge(tmp_path_factory.mktemp(request.param), request.param)


def test_yes_prob_is_the_two_way_softmax_of_the_yes_and_no_logits(judge_dir):
    rm = get("vlm_judge", path=judge_dir, mode="yes_prob", dtype="float32", batch_size=3)
    assert isinstance(rm, VLMJudge) and rm.question == ORM_QUESTION
    scores = rm(PROMPTS, images(5))
    assert scores.shape == (5,) and scores.dtype == torch.float32 and ((scores > 0) & (scores < 1)).all()

    model, tokenizer = rm.model, rm.processor.tokenizer
    yes, no = tokenizer.convert_tokens_to_ids(["yes", "no"])
    expected = []
    with torch.no_grad():
        for prompt, image in zip(PROMPTS, images(5)):  # one at a time: no padding
            text = rm.prompt_text(prompt)
            assert ORM_QUESTION.replace("{prompt}", prompt) in text and text.endswith("<|im_start|>assistant\n")
            logits = model(**rm.processor(text=[text], images=[image], return_tensors="pt")).logits[0, -1]
            expected.append(torch.softmax(torch.stack([logits[yes], logits[no]]), 0)[0])
    torch.testing.assert_close(scores, torch.stack(expected), atol=1e-5, rtol=1e-5)
    assert len(set(scores.tolist())) == 5  # the images and prompts matter
    assert rm.malformed_count == 0


def test_parse_mode_counts_malformed_answers_and_scores_them_fallback(judge_dir):
    rm = get("vlm_judge", path=judge_dir, dtype="float32", max_new_tokens=4, fallback=0.25, keep_malformed=2)
    assert rm.mode == "parse" and rm.question == UNIFIED_REWARD_QUESTION
    scores = rm(PROMPTS[:3], images(3))  # a random model never writes "Final Score: <number>"
    assert scores.tolist() == [0.25] * 3 and rm.malformed_count == 3
    assert [prompt for prompt, _ in rm.malformed_answers] == PROMPTS[1:3]  # the last two kept
    assert all(isinstance(answer, str) and "Final Score" not in answer for _, answer in rm.malformed_answers)
    rm(PROMPTS[:1], images(1))
    assert rm.malformed_count == 4


def test_parse_score():
    pattern = r"Final Score:\s*(\d+(?:\.\d+)?)"
    assert parse_score("The colours are right.\nFinal Score: 4.5", pattern, 5) == pytest.approx(0.9)
    assert parse_score("Final Score: 5", pattern, 5) == 1.0 and parse_score("Final Score: 0", pattern, 5) == 0.0
    for malformed in ["garbage", "", "Final Score: seven", "Final Score: -1", "Final Score: 7"]:
        assert parse_score(malformed, pattern, 5) is None, malformed
    assert parse_score("I give it 7/10", r"(\d+)/10", 10) == pytest.approx(0.7)
    assert parse_score("0.25", r"\d+\.\d+", 1) == 0.25  # no group: the whole match


def test_judge_question_template_and_plain_fallback(judge_dir):
    rm = get("vlm_judge", path=judge_dir, mode="yes_prob", dtype="float32", question="Is this {prompt}? yes or no")
    assert "Is this a red circle? yes or no" in rm.prompt_text("a red circle")
    rm.processor.chat_template = None
    assert rm.prompt_text("a red circle") == f"{rm.processor.image_token}\nIs this a red circle? yes or no\n"
    scores = rm(PROMPTS[:2], images(2))
    assert ((scores > 0) & (scores < 1)).all()
    with pytest.raises(ValueError, match=r"must contain \{prompt\}"):
        VLMJudge(rm.model, rm.processor, question="Is this right?")
    with pytest.raises(ValueError, match="unknown mode 'logprob'; known: yes_prob, parse"):
        VLMJudge(rm.model, rm.processor, mode="logprob")
    with pytest.raises(ValueError, match="'maybe' is 5 tokens"):
        VLMJudge(rm.model, rm.processor, mode="yes_prob", yes_token="maybe")


def test_missing_checkpoints_say_what_to_download_and_how_to_point_at_it(tmp_path, clip_dir):
    with pytest.raises(FileNotFoundError) as missing:
        get("clipscore", path=tmp_path / "nowhere")
    message = str(missing.value)
    assert "no such directory" in message and "openai/clip-vit-base-patch32" in message
    assert "hf download openai/clip-vit-base-patch32" in message and f"path={str(tmp_path / 'nowhere')!r}" in message

    (tmp_path / "config.json").write_text((clip_dir / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match=r"no weights \(\*\.safetensors or \*\.bin\)"):
        get("clipscore", path=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        get("vlm_judge", path=tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no such directory.*CodeGoat24/UnifiedReward-qwen-7b.*path="):
        get("vlm_judge", path=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="hf download cotlab-tests/no-such-clip.*path='/path/to/dir'"):
        get("clipscore", path="cotlab-tests/no-such-clip", local_files_only=True)


def test_bad_inputs_and_options_are_refused_by_name(clip_dir):
    rm = get("clipscore", path=clip_dir)
    with pytest.raises(ValueError, match="'clipscore' got 2 prompts and 1 images"):
        rm(PROMPTS[:2], images(1))
    with pytest.raises(TypeError, match="image 1 is a ndarray, not a PIL image"):
        rm(PROMPTS[:2], [images(1)[0], torch.zeros(3, 8, 8).numpy()])
    with pytest.raises(TypeError, match="prompt 0 is a int"):
        rm([3], images(1))
    with pytest.raises(TypeError, match="unknown option.* wieght for reward model 'clipscore'; valid options: path, "
                                        "device, dtype, local_files_only, weight, batch_size, name"):
        get("clipscore", path=clip_dir, wieght=1.0)
    with pytest.raises(TypeError, match="unknown option.* temperature .*valid options: .*mode, question, "
                                        "answer_pattern"):
        get("vlm_judge", temperature=0.0)
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        get("clipscore", path=clip_dir, dtype="fp8")
    assert {"clipscore", "vlm_judge"} <= set(rewards.available())
