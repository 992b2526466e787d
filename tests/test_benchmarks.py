"""GenEval and T2I-CompBench at full scale: the prompt-file loaders on small files written here (and on the official
files when ../shared/benchmarks exists), the official folder layouts on a dummy sampler, GenEval's and T2I-CompBench's
rules on hand-made detections, and the transformers scorers on tiny random checkpoints built here (no hub)."""
import json
import os
import re
import string
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cotlab import prompt_files as P
from cotlab.evaluation import benchmarks as B
from cotlab.evaluation import geneval as G
from cotlab.evaluation import t2i_compbench as C
from cotlab.evaluation import vision as V
from cotlab.evaluation.geneval import DetectedObject
from cotlab.evaluation.vision import Detections
from cotlab.experiments.stand_ins import tiny_blip_vqa, tiny_clip, tiny_mask2former
from cotlab.prompt_files import BenchmarkFileError
from cotlab.world.scoring import box_relations

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks"

LINES = [
    {"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "a photo of a bench"},
    {"tag": "counting", "include": [{"class": "clock", "count": 2}], "exclude": [{"class": "clock", "count": 3}],
     "prompt": "a photo of two clocks"},
    {"tag": "position", "include": [{"class": "teddy bear", "count": 1},
                                    {"class": "dog", "count": 1, "position": ["right of", 0]}],
     "prompt": "a photo of a dog right of a teddy bear"},
]


def write_jsonl(path, items):
    path.write_text("".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in items))
    return path


# ---------------------------------------------------------------------------------------------------------------------
# Loaders


def test_load_geneval_reads_the_schema_and_enforces_the_official_count(tmp_path):
    path = write_jsonl(tmp_path / "evaluation_metadata.jsonl", LINES)
    prompts = P.load_geneval(tmp_path, expected=3)  # a directory holding the file
    assert [p.index for p in prompts] == [0, 1, 2] and prompts[1].prompt == "a photo of two clocks"
    assert prompts[1].tag == "counting" and prompts[1].exclude == [{"class": "clock", "count": 3}]
    assert prompts[0].exclude == [] and prompts[2].metadata == LINES[2]
    assert P.load_geneval(path, expected=None) == prompts
    with pytest.raises(BenchmarkFileError, match=r"evaluation_metadata\.jsonl: 3 prompts, expected 553"):
        P.load_geneval(path)
    with pytest.raises(FileNotFoundError, match="djghosh13/geneval"):
        P.load_geneval(tmp_path / "absent.jsonl")


@pytest.mark.parametrize("bad, message", [
    ("", "empty line"),
    ("{\"tag\": \"colors\", ", "malformed JSON"),
    ("[1, 2]", "a JSON list"),
    ({"tag": "colors", "prompt": "x"}, "missing field 'include'"),
    ({"tag": "colours", "include": [{"class": "cup", "count": 1}], "prompt": "x"}, "tag 'colours'"),
    ({"tag": "colors", "include": [], "prompt": "x"}, "non-empty list"),
    ({"tag": "colors", "include": [{"class": "unicorn", "count": 1}], "prompt": "x"}, "80 COCO classes"),
    ({"tag": "colors", "include": [{"class": "cup"}], "prompt": "x"}, "missing field 'count'"),
    ({"tag": "colors", "include": [{"class": "cup", "count": 0}], "prompt": "x"}, "integer >= 1"),
    ({"tag": "colors", "include": [{"class": "cup", "count": 1, "color": "teal"}], "prompt": "x"}, "color 'teal'"),
    ({"tag": "colors", "include": [{"class": "cup", "count": 1, "size": 2}], "prompt": "x"}, "unknown key"),
    ({"tag": "position", "include": [{"class": "cup", "count": 1, "position": ["left of", 0]}], "prompt": "x"},
     "earlier include clause"),
    ({"tag": "counting", "include": [{"class": "cup", "count": 2}], "exclude": [{"class": "cup", "count": 3,
                                                                                 "color": "red"}], "prompt": "x"},
     "exclude\\[0\\]: unknown key"),
    ({"tag": "colors", "include": [{"class": "cup", "count": 1}], "prompt": ""}, "non-empty string"),
])
def test_load_geneval_names_the_file_and_line_of_a_bad_line(tmp_path, bad, message):
    path = write_jsonl(tmp_path / "meta.jsonl", [LINES[0], bad, LINES[1]])
    with pytest.raises(BenchmarkFileError, match=rf"meta\.jsonl, line 2: .*{message}"):
        P.load_geneval(path, expected=None)


def test_load_compbench_reads_crlf_tabs_and_a_missing_final_newline(tmp_path):
    (tmp_path / "color_val.txt").write_bytes(b"a red cube and a blue ball\r\na green cup\tignored\r\n  a pink hat  ")
    prompts = P.load_compbench(tmp_path, "color", expected=3)
    assert [p.prompt for p in prompts] == ["a red cube and a blue ball", "a green cup", "a pink hat"]
    assert prompts[2] == P.CompBenchPrompt(2, "a pink hat", "color", "val")
    with pytest.raises(BenchmarkFileError, match=r"color_val\.txt: 3 prompts, expected 300"):
        P.load_compbench(tmp_path, "color")
    (tmp_path / "shape_val.txt").write_text("a round cup\n\na square box\n")
    with pytest.raises(BenchmarkFileError, match=r"shape_val\.txt, line 2: empty line"):
        P.load_compbench(tmp_path, "shape", expected=None)
    with pytest.raises(ValueError, match="unknown T2I-CompBench category 'colour'"):
        P.load_compbench(tmp_path, "colour")
    with pytest.raises(ValueError, match="unknown split 'test'"):
        P.load_compbench(tmp_path, "color", "test")
    with pytest.raises(FileNotFoundError, match="Karine-Huang/T2I-CompBench"):
        P.load_compbench(tmp_path, "texture", expected=None)


def test_the_training_prompts_are_every_categorys_train_file_and_complex_kinds_follow_the_3_in_1_files(tmp_path):
    for c in P.COMPBENCH_CATEGORIES:
        (tmp_path / f"{c}_train.txt").write_text(f"{c} one\n{c} two\n")
    train = P.load_compbench_train(tmp_path, expected=2)
    assert len(train) == 16 and [p.category for p in train[::2]] == list(P.COMPBENCH_CATEGORIES)
    (tmp_path / "complex_val.txt").write_text("The cat was near the dog.\nThe boy kicked the ball.\nA mix.\n")
    (tmp_path / "complex_val_spatial.txt").write_text("The cat was near the dog.\n")
    (tmp_path / "complex_val_action.txt").write_text("the boy kicked the ball\n")
    kinds = P.load_complex_kinds(tmp_path, P.load_compbench(tmp_path, "complex", expected=None))
    assert kinds == ["spatial", "action", "spatial_action"]


@pytest.mark.skipif(not SHARED.is_dir(), reason="the official prompt files (../shared/benchmarks) are not here")
def test_the_official_prompt_files_load_with_their_official_counts():
    from collections import Counter

    geneval = P.load_geneval(SHARED / "geneval" / "evaluation_metadata.jsonl")
    assert len(geneval) == P.GENEVAL_PROMPTS and Counter(p.tag for p in geneval) == P.GENEVAL_TAG_COUNTS
    assert all(p.exclude for p in geneval if p.tag == "counting")
    directory = SHARED / "t2i-compbench"
    assert len(P.load_compbench_train(directory)) == 5600  # the paper's 5.6k training prompts
    for category in P.COMPBENCH_CATEGORIES:
        val = P.load_compbench(directory, category, "val")
        assert len(val) == 300
        for p in val:
            B.compbench_filename(p.prompt, 2999)  # every val prompt can be named in the official layout
    # The noun-phrase extractor finds the two objects of every "a/an ... and a/an ..." attribute prompt.
    for category in ("color", "shape", "texture"):
        two = [p.prompt for p in P.load_compbench(directory, category, "val")
               if re.fullmatch(r"an? [a-z ]+ and an? [a-z ]+", p.prompt) and " of " not in p.prompt]
        assert len(two) > 150 and all(len(C.noun_phrases(p)) == 2 for p in two)
    spatial = P.load_compbench(directory, "spatial", "val")
    assert all(None not in C.spatial_objects(p.prompt, labels=P.GENEVAL_CLASSES) for p in spatial)


# ---------------------------------------------------------------------------------------------------------------------
# Generation and the official layouts


class DummySampler:
    """Image j of a prompt is a solid colour that encodes (prompt number, j); counts the prompts it was asked for."""

    def __init__(self, texts, fail_after=None):
        self.ids = {t: i for i, t in enumerate(texts)}
        self.asked, self.fail_after = [], fail_after

    def __call__(self, prompts, n):
        if self.fail_after is not None and len(self.asked) >= self.fail_after:
            raise RuntimeError("interrupted")
        self.asked += list(prompts)
        return [Image.new("RGB", (12, 10), (self.ids[p], 10 * j, 7)) for p in prompts for j in range(n)]


def colour(path):
    return Image.open(path).getpixel((0, 0))


def test_geneval_layout_is_the_official_one_and_a_rerun_resumes(tmp_path):
    write_jsonl(tmp_path / "meta.jsonl", LINES)
    prompts = P.load_geneval(tmp_path / "meta.jsonl", expected=None)
    sampler = DummySampler([p.prompt for p in prompts])
    report = B.write_generations(sampler, prompts, tmp_path / "out", images_per_prompt=2, batch_prompts=2,
                                 progress=False)
    assert (report.written, report.skipped, report.images) == (3, 0, 6)
    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == ["00000", "00001", "00002"]
    for p in prompts:
        folder = out / f"{p.index:05d}"
        assert (folder / "metadata.jsonl").read_text() == json.dumps(LINES[p.index])  # as json.dump writes it
        assert sorted(os.listdir(folder / "samples")) == ["0000.png", "0001.png"]
        assert colour(folder / "samples" / "0001.png") == (sampler.ids[p.prompt], 10, 7)
    rows = B.read_geneval_folder(out)
    assert len(rows) == 6 and rows[2][0] == LINES[1] and rows[2][1].name == "0000.png"

    (out / ".cotlab-tmp-00001-dead").mkdir()  # an interrupted run's unfinished folder
    again = B.write_generations(sampler, prompts, out, images_per_prompt=2, progress=False)
    assert (again.written, again.skipped) == (0, 3) and len(sampler.asked) == 3
    assert not (out / ".cotlab-tmp-00001-dead").exists()
    other = P.GenEvalPrompt(1, "another", "colors", [], [], {"prompt": "another"})
    with pytest.raises(FileExistsError, match="does not hold GenEval prompt 1"):
        B.write_generations(sampler, [other], out, progress=False)


def test_compbench_layout_numbers_images_over_the_category_and_resumes_an_interrupted_run(tmp_path):
    color = [P.CompBenchPrompt(i, t, "color", "val") for i, t in enumerate(["a red cube", "a blue ball", "a tan hat"])]
    spatial = [P.CompBenchPrompt(4, "a cat near a dog", "spatial", "val")]
    texts = [p.prompt for p in color + spatial]
    failing = DummySampler(texts, fail_after=2)
    with pytest.raises(RuntimeError, match="interrupted"):
        B.write_generations(failing, color + spatial, tmp_path, images_per_prompt=3, batch_prompts=2, progress=False)
    samples = tmp_path / "color" / "samples"
    assert sorted(os.listdir(samples)) == sorted([f"a red cube_00000{k}.png" for k in range(3)] + [
        f"a blue ball_00000{k}.png" for k in range(3, 6)])  # whole prompts only
    os.remove(samples / "a blue ball_000004.png")  # as if a crash came between two renames

    sampler = DummySampler(texts)
    report = B.write_generations(sampler, color + spatial, tmp_path, images_per_prompt=3, progress=False)
    assert sampler.asked == ["a blue ball", "a tan hat", "a cat near a dog"] and report.skipped == 1
    assert report.folders == [tmp_path / "color", tmp_path / "spatial"]
    rows = B.read_compbench_folder(tmp_path / "color")
    assert [(p, q) for p, q, _ in rows] == [(t, k) for k, t in enumerate(["a red cube"] * 3 + ["a blue ball"] * 3
                                                                          + ["a tan hat"] * 3)]
    assert colour(rows[4][2]) == (1, 10, 7)  # image j = 1 of prompt 1
    spatial_names = sorted(os.listdir(tmp_path / "spatial" / "samples"))
    assert spatial_names == [f"a cat near a dog_0000{k}.png" for k in (12, 13, 14)]  # prompt 4: images 12 to 14
    assert not (tmp_path / "color" / ".cotlab-partial").exists()
    with pytest.raises(FileExistsError, match="write to a fresh directory"):  # another n: other file names
        B.write_generations(sampler, color, tmp_path, images_per_prompt=2, progress=False)


def test_write_generations_refuses_what_the_official_scorers_cannot_read(tmp_path):
    sampler = DummySampler(["a red_cube", "ok"])
    with pytest.raises(ValueError, match="before the first '_'"):
        B.write_generations(sampler, [P.CompBenchPrompt(0, "a red_cube", "color", "val")], tmp_path)
    assert sampler.asked == []
    with pytest.raises(TypeError, match="all GenEvalPrompt"):
        B.write_generations(sampler, ["ok"], tmp_path)
    with pytest.raises(ValueError, match="share an index"):
        B.write_generations(sampler, [P.CompBenchPrompt(0, "ok", "color", "val")] * 2, tmp_path)

    def short(prompts, n):
        return [Image.new("RGB", (4, 4))]

    with pytest.raises(ValueError, match="returned 1 images for 1 prompts x 2"):
        B.write_generations(short, [P.CompBenchPrompt(0, "ok", "color", "val")], tmp_path, images_per_prompt=2)

    def arrays(prompts, n):
        return [np.zeros((4, 4, 3))] * n

    with pytest.raises(TypeError, match="not a PIL image"):
        B.write_generations(arrays, [P.CompBenchPrompt(0, "ok", "color", "val")], tmp_path, images_per_prompt=2)
    (tmp_path / "color" / "samples" / "stray.png").write_bytes(b"")
    with pytest.raises(BenchmarkFileError, match="not an official T2I-CompBench image name"):
        B.read_compbench_folder(tmp_path / "color")


def test_policy_sampler_seeds_each_image_by_prompt_and_index_whatever_the_batch():
    class Policy:
        def __init__(self):
            self.calls = []

        def sample(self, prompts, n, **kwargs):
            self.calls.append((list(prompts), n, kwargs))

            class Rollout:
                images = [Image.new("RGB", (2, 2), (s % 256, 0, 0)) for s in kwargs["row_seeds"]]
            return Rollout()

    policy = Policy()
    sample = B.policy_sampler(policy, guidance_scale=3.0, seed=5)
    both = sample(["a cat", "a dog"], 2)
    alone = sample(["a dog"], 2)
    assert len(both) == 4 and [im.getpixel((0, 0)) for im in both[2:]] == [im.getpixel((0, 0)) for im in alone]
    seeds = policy.calls[0][2]["row_seeds"]
    assert seeds == [B.row_seed(5, p, j) for p in ("a cat", "a dog") for j in range(2)] and len(set(seeds)) == 4
    assert B.row_seed(6, "a cat", 0) != seeds[0] and policy.calls[0][2]["guidance_scale"] == 3.0


# ---------------------------------------------------------------------------------------------------------------------
# GenEval's rules on hand-made detections


def dets(*items, size=(100, 100)):
    """Detections from (label, score, box) triples, with box-shaped masks."""
    masks = np.zeros((len(items), size[1], size[0]), dtype=bool)
    for i, (_, _, (x1, y1, x2, y2)) in enumerate(items):
        masks[i, int(y1):int(y2), int(x1):int(x2)] = True
    return Detections([b for _, _, b in items], [s for _, s, _ in items], [label for label, _, _ in items], masks)


def test_geneval_objects_thresholds_sorts_caps_and_optionally_suppresses():
    found = dets(("cup", 0.5, (0, 0, 10, 10)), ("cup", 0.9, (50, 50, 60, 60)), ("cup", 0.3, (0, 0, 5, 5)),
                 ("dog", 0.95, (0, 0, 9, 9)), ("cup", 0.8, (1, 1, 11, 11)))
    kept = G.geneval_objects(found, 0.3)
    assert list(kept) == ["cup", "dog"] and [o.score for o in kept["cup"]] == [0.9, 0.8, 0.5]  # 0.3 is not > 0.3
    assert kept["cup"][0].box == (50, 50, 60, 60) and kept["cup"][0].mask.sum() == 100
    assert [o.score for o in G.geneval_objects(found, 0.3, max_objects=2)["cup"]] == [0.9, 0.8]
    assert list(G.geneval_objects(found, 0.9)) == ["dog"]
    nms = G.geneval_objects(found, 0.3, nms_threshold=0.5)["cup"]  # the 0.5 box overlaps the 0.8 one
    assert [o.score for o in nms] == [0.9, 0.8]
    assert G.geneval_iou((0, 0, 9, 9), (0, 0, 9, 9)) == 1 and G.geneval_iou((0, 0, 9, 9), (10, 0, 19, 9)) == 0
    assert G.geneval_iou((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(50 / 150)


@pytest.mark.parametrize("box_a, margin, expected", [
    ((0, 40, 20, 60), 0.1, {"left of"}), ((80, 40, 100, 60), 0.1, {"right of"}), ((40, 0, 60, 20), 0.1, {"above"}),
    ((40, 80, 60, 100), 0.1, {"below"}), ((80, 80, 100, 100), 0.1, {"right of", "below"}),
    ((0, 35, 20, 55), 0.1, {"left of"}),  # mostly horizontal: dy / |offset| is small, so not also "above"
    ((52, 40, 72, 60), 0.1, {"right of"}),  # offset 12 shrunk by 0.1 x (20 + 20) to 8: 8 / 12 > 0.5
    ((52, 40, 72, 60), 0.3, set()),  # shrunk by 0.3 x 40 = 12 to 0: no relation
])
def test_relative_position_compares_centres_with_a_margin_of_the_objects_sizes(box_a, margin, expected):
    assert box_relations(box_a, (40, 40, 60, 60), margin) == expected


def test_the_geneval_scorer_and_the_exact_scorer_judge_positions_alike():
    """One GenEval position rule: GenEval's verdict on two ShapeWorld objects' boxes is the exact scorer's."""
    import cotlab.world as w

    objects = [w.Obj("circle", "red", "solid", size, row, col) for size in w.SIZES for row in range(0, 7, 3)
               for col in range(0, 7, 2)]
    seen = set()
    for a in objects:
        for b in objects:
            found = w.relative_position(a, b)
            assert found == box_relations(a.box, b.box)
            for relation in ("left of", "right of", "above", "below"):
                meta = {"include": [{"class": "dog", "count": 1},
                                    {"class": "cat", "count": 1, "position": [relation, 0]}]}
                detected = {"dog": [DetectedObject(b.box, 0.9)], "cat": [DetectedObject(a.box, 0.9)]}
                verdict = G.evaluate_geneval(meta, detected, no_colours)[0]
                assert verdict == w.relation_holds(relation, a, b) == (relation in found)
                seen.add(verdict)
    assert seen == {True, False}


def no_colours(name, objects):
    raise AssertionError("no colour is asked for")


def test_evaluate_geneval_counting_is_at_least_n_and_fewer_than_n_plus_one():
    meta = LINES[1]  # two clocks: include count 2, exclude count 3
    two = G.geneval_objects(dets(("clock", 0.95, (0, 0, 10, 10)), ("clock", 0.92, (20, 0, 30, 10))), 0.9)
    assert G.evaluate_geneval(meta, two, no_colours) == (True, "")
    one = G.geneval_objects(dets(("clock", 0.95, (0, 0, 10, 10)), ("clock", 0.85, (20, 0, 30, 10))), 0.9)
    assert G.evaluate_geneval(meta, one, no_colours) == (False, "expected clock>=2, found 1")
    three = G.geneval_objects(dets(*[("clock", 0.95, (20 * i, 0, 20 * i + 10, 10)) for i in range(3)]), 0.9)
    assert G.evaluate_geneval(meta, three, no_colours) == (False, "expected clock<3, found 3")


def test_evaluate_geneval_checks_colours_on_the_most_confident_objects_only():
    meta = {"tag": "color_attr", "prompt": "a red cup and a blue dog",
            "include": [{"class": "cup", "count": 1, "color": "red"}, {"class": "dog", "count": 1, "color": "blue"}]}
    objects = G.geneval_objects(dets(("cup", 0.9, (0, 0, 10, 10)), ("cup", 0.5, (20, 0, 30, 10)),
                                     ("dog", 0.8, (40, 0, 50, 10))), 0.3)
    asked = []

    def classify(name, objs):
        asked.append((name, [o.score for o in objs]))
        return {"cup": ["red"], "dog": ["green"]}[name]

    correct, reason = G.evaluate_geneval(meta, objects, classify)
    assert not correct and reason == "expected blue dog>=1, found 0 blue; and 1 green"
    assert asked == [("cup", [0.9]), ("dog", [0.8])]
    assert G.evaluate_geneval(meta, objects, lambda n, o: {"cup": ["red"], "dog": ["blue"]}[n]) == (True, "")


def test_evaluate_geneval_position_needs_every_pair_in_relation_and_a_matched_target():
    meta = LINES[2]  # a dog right of a teddy bear
    right = G.geneval_objects(dets(("teddy bear", 0.9, (0, 40, 20, 60)), ("dog", 0.9, (60, 40, 80, 60))), 0.3)
    assert G.evaluate_geneval(meta, right, no_colours) == (True, "")
    left = G.geneval_objects(dets(("teddy bear", 0.9, (60, 40, 80, 60)), ("dog", 0.9, (0, 40, 20, 60))), 0.3)
    assert G.evaluate_geneval(meta, left, no_colours) == (False, "expected dog right of target, found left of target")
    touching = G.geneval_objects(dets(("teddy bear", 0.9, (40, 40, 60, 60)), ("dog", 0.9, (42, 40, 62, 60))), 0.3)
    assert G.evaluate_geneval(meta, touching, no_colours)[1] == "expected dog right of target, found  target"
    no_bear = G.geneval_objects(dets(("dog", 0.9, (60, 40, 80, 60))), 0.3)
    correct, reason = G.evaluate_geneval(meta, no_bear, no_colours)
    assert not correct and reason == "expected teddy bear>=1, found 0\nno target for dog to be right of"


def test_geneval_summary_averages_images_per_task_then_tasks():
    results = [G.GenEvalResult(tag, f"{tag}{i // 2}", ok, "", {}, {}) for i, (tag, ok) in enumerate(
        [("counting", True), ("counting", False), ("counting", False), ("counting", False),
         ("colors", True), ("colors", True)])]
    summary = G.geneval_summary(results)
    assert summary["counting"] == 0.25 and summary["colors"] == 1.0 and summary["overall"] == 0.625
    assert summary["correct_prompts"] == pytest.approx(2 / 3)  # counting0 has one correct image, counting1 none
    assert list(summary.index[:2]) == ["counting", "colors"]


class FakeDetector:
    labels = P.GENEVAL_CLASSES

    def __init__(self, found):
        self.found, self.calls = found, 0

    def __call__(self, images):
        self.calls += 1
        return [self.found for _ in images]


def test_genevalscorer_uses_the_counting_threshold_for_counting_prompts_and_scores_a_folder(tmp_path):
    found = dets(("clock", 0.95, (0, 0, 10, 10)), ("clock", 0.5, (20, 0, 30, 10)), size=(12, 10))
    scorer = G.GenEvalScorer(FakeDetector(found), lambda image, objs, name: ["red"] * len(objs), batch_size=2)
    single = {"tag": "single_object", "include": [{"class": "clock", "count": 2}], "prompt": "p"}
    results = scorer([LINES[1], single], [Image.new("RGB", (12, 10))] * 2)
    assert [r.correct for r in results] == [False, True]  # 0.5 counts at threshold 0.3, not at 0.9
    assert results[1].details == {"clock": [[0, 0, 10, 10, 0.95], [20, 0, 30, 10, 0.5]]}
    with pytest.raises(ValueError, match="cannot find 79 of GenEval's 80 classes"):
        G.GenEvalScorer(type("D", (), {"labels": ["cat"]})(), no_colours)

    prompts = P.load_geneval(write_jsonl(tmp_path / "m.jsonl", LINES[:2]), expected=None)
    B.write_generations(DummySampler([p.prompt for p in prompts]), prompts, tmp_path / "out", images_per_prompt=2,
                        progress=False)
    table = scorer.score_folder(tmp_path / "out", progress=False)
    assert list(table["tag"]) == ["single_object"] * 2 + ["counting"] * 2 and len(table) == 4
    assert list(table["correct"]) == [False, False, False, False]  # no bench; one clock above 0.9
    assert json.loads(table["metadata"][2]) == LINES[1]
    assert G.geneval_summary(table)["overall"] == 0.0


# ---------------------------------------------------------------------------------------------------------------------
# T2I-CompBench's rules


def test_noun_phrases_questions_and_adjectives():
    assert C.noun_phrases("a green bench and a red car") == ["a green bench", "a red car"]
    assert C.noun_phrases("rubber gloves and a fluffy teddy bear") == ["rubber gloves", "a fluffy teddy bear"]
    assert C.noun_phrases("A child is playing with a toy airplane in the backyard.") == [
        "A child", "a toy airplane", "the backyard"]
    assert C.noun_phrases("a man riding a horse") == ["a man", "a horse"]
    assert C.noun_phrases("The red hat was on top of the brown coat rack.") == ["The red hat", "the brown coat rack"]
    assert C.noun_phrases("The rough boots contrasted with the snow") == ["The rough boots", "the snow"]
    assert C.noun_phrases("a cat on the left of a dog") == ["a cat", "a dog"]  # "the left" is never asked
    assert C.pre_question("The Red Hat?") == "the red hat?" and C.pre_question("a (big) dog.!?") == "a big dog?"
    assert C.pre_question(" ".join(["w"] * 60)) == " ".join(["w"] * 50)
    assert C.remove_adjectives("The red hat was on top of the wooden rack.") == "The hat was on top of the rack ."


def test_determine_position_covers_every_relation():
    left, right = (0, 0, 10, 10), (100, 0, 110, 10)
    assert C.determine_position("on the left of", left, right) == 1.0
    assert C.determine_position("on the left of", right, left) == 0.0
    assert C.determine_position("on the right of", right, left) == 1.0
    overlap = (4, 0, 14, 10)  # 4 px right of `left`, IoU = 60 / 140
    assert C.determine_position("on the right of", overlap, left) == pytest.approx(0.1 / (60 / 140))
    top, bottom = (0, 0, 10, 10), (0, 100, 10, 110)
    assert C.determine_position("on the top of", top, bottom) == 1.0
    assert C.determine_position("on the bottom of", bottom, top) == 1.0
    assert C.determine_position("on the bottom of", top, bottom) == 0.0
    assert C.determine_position("on the top of", left, right) == 0.0  # horizontal offset dominates
    far = (300, 300, 310, 310)
    assert C.determine_position("near", left, right) == 1.0  # |d_y| = 0 < 150
    assert C.determine_position("next to", left, far) == pytest.approx(150 / 300)
    assert C.determine_position("on top of", top, bottom) == 0.0 and C.determine_position(None, top, bottom) == 0.0


def test_spatial_objects_and_relation_without_a_tagger():
    labels = P.GENEVAL_CLASSES
    assert C.spatial_relation("a girl on the top of a frog") == "on the top of"
    assert C.spatial_relation("a cat next to a dog") == "next to" and C.spatial_relation("a cat") is None
    assert C.spatial_objects("a girl on the top of a frog") == ("girl", "frog")
    assert C.spatial_objects("a teddy bear on the left of a wine glass", labels=labels) == ("teddy bear",
                                                                                             "wine glass")
    assert C.spatial_objects("The red hat was on top of the brown coat rack.", complex=True) == ("hat", "rack")
    assert C.spatial_objects("The lamp placed next to the wooden bed", complex=True) == ("lamp", "bed")
    assert C.spatial_objects("The cup was on the left of the bowl.", complex=True) == ("cup", "bowl")
    assert C.spatial_objects("The boy kicked the ball.", complex=True) == (None, None)


def test_spatial_score_weights_confidences_and_position_and_zeroes_totals_under_a_half():
    prompt = "a cat on the left of a dog"
    both = dets(("cat", 0.9, (0, 40, 20, 60)), ("dog", 0.8, (70, 40, 90, 60)), ("dog", 0.6, (0, 0, 5, 5)))
    assert C.spatial_score(prompt, both, (100, 100)) == pytest.approx(0.25 * 0.9 + 0.25 * 0.8 + 0.5)
    swapped = dets(("cat", 0.9, (70, 40, 90, 60)), ("dog", 0.8, (0, 40, 20, 60)))
    assert C.spatial_score(prompt, swapped, (100, 100)) == 0.0  # 0.425 < 0.5
    one = dets(("cat", 1.0, (0, 40, 20, 60)))
    assert C.spatial_score(prompt, one, (100, 100)) == 0.0  # 0.25 < 0.5
    weak = dets(("cat", 0.9, (0, 40, 20, 60)), ("dog", 0.45, (70, 40, 90, 60)))
    assert C.spatial_score(prompt, weak, (100, 100)) == 0.0  # the dog is under UniDet's 0.5 confidence
    people = dets(("person", 0.9, (0, 40, 20, 60)), ("computer mouse", 0.9, (70, 40, 90, 60)))
    assert C.spatial_score("a girl next to a mouse", people, (100, 100)) == pytest.approx(0.95)
    # The 150 px threshold is in UniDet's 479 px frame: 200 image px apart in a 1000 px image are 95.8 there.
    near = dets(("cat", 1.0, (0, 0, 10, 10)), ("dog", 1.0, (200, 200, 210, 210)), size=(1000, 1000))
    assert C.unidet_frame(1000, 1000) == (0.479, 0.479) and C.unidet_frame(400, 800) == (240 / 400, 480 / 800)
    assert C.spatial_score("a cat near a dog", near, (1000, 1000)) == 1.0


def test_three_in_one_averages_the_relevant_scores():
    out = C.three_in_one([0.3, 0.3, 0.3], [0.6, 0.6, 0.6], [0.9, 0.9, 0.9], ["spatial", "action", "spatial_action"])
    torch.testing.assert_close(out, torch.tensor([0.45, 0.6, 0.6]))
    torch.testing.assert_close(C.three_in_one([0.0], [0.3], [0.6]), torch.tensor([0.3]))
    with pytest.raises(ValueError, match="kinds must be"):
        C.three_in_one([0.0], [0.0], [0.0], ["both"])


def test_compbenchscorer_routes_each_category_to_its_metric(tmp_path):
    calls = []

    def model(tag):
        def score(prompts, images, **kwargs):
            calls.append((tag, kwargs))
            return torch.full((len(prompts),), {"blip": 0.2, "spatial": 0.4, "clip": 0.9}[tag])
        return score

    scorer = C.CompBenchScorer(model("blip"), model("clip"), model("spatial"))
    images = [Image.new("RGB", (8, 8))] * 2
    assert scorer("texture", ["a", "b"], images).tolist() == pytest.approx([0.2, 0.2])
    assert scorer("non_spatial", ["a", "b"], images).tolist() == pytest.approx([0.9, 0.9])
    calls.clear()
    out = scorer("complex", ["a", "b"], images, kinds={"a": "spatial", "b": "action"})
    assert out.tolist() == pytest.approx([0.3, 0.55])
    assert calls == [("blip", {}), ("spatial", {"complex": True}), ("clip", {"complex": True})]
    with pytest.raises(ValueError, match="UniDet"):
        scorer("numeracy", ["a"], images[:1])
    with pytest.raises(ValueError, match="needs the CLIP"):
        C.CompBenchScorer(blip=model("blip"))("non_spatial", ["a"], images[:1])

    prompts = [P.CompBenchPrompt(i, t, "shape", "val") for i, t in enumerate(["a round cup", "a square box"])]
    B.write_generations(DummySampler([p.prompt for p in prompts]), prompts, tmp_path, images_per_prompt=2,
                        progress=False)
    table = scorer.score_folder(tmp_path / "shape", "shape", batch_images=3, progress=False)
    assert list(table["question_id"]) == [0, 1, 2, 3] and list(table["prompt"]) == ["a round cup"] * 2 + [
        "a square box"] * 2
    assert table["score"].mean() == pytest.approx(0.2)


# ---------------------------------------------------------------------------------------------------------------------
# The model wrappers on tiny random checkpoints


def test_instance_detections_follows_mmdetections_post_processing():
    class_logits = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]))  # 2 queries, 2 classes + no-object
    mask_logits = torch.full((2, 4, 5), -3.0)
    mask_logits[0, 1:3, 2:4] = 2.0
    mask_logits[1, 0, 0] = 1.0
    found = V.instance_detections(class_logits, mask_logits, ["cat", "dog"], max_per_image=3)
    sig2, sig1 = torch.sigmoid(torch.tensor(2.0)).item(), torch.sigmoid(torch.tensor(1.0)).item()
    # the top 3 (query, class) pairs: (0, cat) 0.7, (1, dog) 0.3, (0, dog) 0.2
    assert found.labels == ["cat", "dog", "dog"]
    np.testing.assert_allclose(found.scores, [0.7 * sig2, 0.3 * sig1, 0.2 * sig2], rtol=1e-5)
    np.testing.assert_array_equal(found.boxes, [[2, 1, 4, 3], [0, 0, 1, 1], [2, 1, 4, 3]])
    assert found.masks.shape == (3, 4, 5) and found.masks[0].sum() == 4
    assert V.mask_boxes(torch.zeros(1, 3, 3, dtype=torch.bool)).tolist() == [[0, 0, 0, 0]]
    assert V.mmdet_resize(384, 384) == (800, 800) and V.mmdet_resize(2000, 500) == (1333, 333)
    assert V.geneval_label("Motorbike") == "motorcycle" and V.geneval_label("mouse") == "computer mouse"


def test_mask2former_detector_crops_the_padding_and_resizes_masks_to_the_original_image():
    from types import SimpleNamespace

    from transformers import Mask2FormerImageProcessorPil

    class Model(torch.nn.Module):  # one query, sure it is a cat; its mask: the left third of the padded input
        config = SimpleNamespace(id2label={0: "cat", 1: "dog"})
        device, dtype = torch.device("cpu"), torch.float32

        def __init__(self):
            super().__init__()
            self.inputs = []

        def forward(self, pixel_values):
            self.inputs.append(pixel_values.shape)
            n, _, h, w = pixel_values.shape
            masks = torch.full((n, 2, h // 4, w // 4), -10.0)
            masks[:, 0, :, : w // 12] = 10.0  # query 0: the left third of the padded input
            masks[:, 1, :, w // 4 - 2:] = 10.0  # query 1: padding only
            logits = torch.tensor([[9.0, 0.0, 0.0], [0.0, 8.0, 0.0]]).expand(n, 2, 3)
            return SimpleNamespace(class_queries_logits=logits, masks_queries_logits=masks)

    model = Model()
    detector = V.Mask2FormerDetector(model, Mask2FormerImageProcessorPil(), test_scale=(96, 64), max_per_image=2)
    found = detector([Image.new("RGB", (40, 30))])[0]  # resized to 85 x 64, padded to 96 x 64
    assert model.inputs == [(1, 3, 64, 96)] and found.labels == ["cat", "dog"] and found.masks.shape == (2, 30, 40)
    # the left third of the padded input (32 px) is 32 / 85 of the image: 15 of its 40 columns
    np.testing.assert_array_equal(found.boxes[0], [0, 0, 15, 30])
    assert found.masks[1].sum() == 0 and found.scores[1] == 0 and found.boxes[1].tolist() == [0, 0, 0, 0]


@pytest.fixture(scope="module")
def mask2former_dir(tmp_path_factory):
    return tiny_mask2former(tmp_path_factory.mktemp("mask2former"))


def picture(width, height, seed):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_mask2former_detector_returns_mmdet_style_detections_at_the_original_size(mask2former_dir):
    detector = V.Mask2FormerDetector.from_pretrained(mask2former_dir, test_scale=(96, 64), batch_size=2)
    assert "computer mouse" in detector.labels and "mouse" not in detector.labels and len(detector.labels) == 80
    images = [picture(40, 30, 0), picture(30, 50, 1), picture(40, 30, 2)]
    found = detector(images)
    assert len(found) == 3
    for image, d in zip(images, found):
        assert len(d.labels) == 100 and set(d.labels) <= set(P.GENEVAL_CLASSES)  # top 100 of 10 queries x 80
        assert d.masks.shape == (100, image.height, image.width)
        np.testing.assert_array_equal(d.boxes, V.mask_boxes(torch.from_numpy(d.masks)).numpy())
        assert ((d.scores >= 0) & (d.scores <= 1)).all() and d.scores.max() > 0
    alone = detector([images[2]])[0]  # the same image alone, not batched with image 0
    np.testing.assert_allclose(alone.scores, found[2].scores, rtol=1e-4, atol=1e-6)
    assert not np.array_equal(found[0].scores, found[2].scores)
    assert detector._inputs(images[1]).shape == (3, 96, 64)  # 30x50 -> 58x96 (x1.92), padded to 64x96


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return tiny_clip(tmp_path_factory.mktemp("clip"), seed=1, characters=string.ascii_lowercase + "-")


def embed(model, processor, texts=None, images=None):
    with torch.no_grad():
        if texts is not None:
            inputs = processor(text=texts, return_tensors="pt", padding=True)
            out = model.get_text_features(input_ids=inputs["input_ids"],
                                          attention_mask=inputs["attention_mask"]).pooler_output
        else:
            out = model.get_image_features(pixel_values=processor(images=images, return_tensors="pt")[
                "pixel_values"]).pooler_output
    return out / out.norm(dim=-1, keepdim=True)


def test_clip_color_classifier_is_genevals_zero_shot_classifier_on_masked_crops(clip_dir):
    from transformers import CLIPModel, CLIPProcessor

    classifier = G.CLIPColorClassifier.from_pretrained(clip_dir)
    weights = classifier.class_weights("dog")
    assert weights.shape == (16, 10)
    model, processor = CLIPModel.from_pretrained(clip_dir).eval(), CLIPProcessor.from_pretrained(clip_dir)
    red = embed(model, processor, texts=["a photo of a red dog", "a photo of a red-colored dog",
                                         "a photo of a red object"]).mean(0)
    torch.testing.assert_close(weights[:, 0], red / red.norm(), atol=1e-5, rtol=1e-5)

    image = picture(20, 16, 3)
    mask = np.zeros((16, 20), dtype=bool)
    mask[4:10, 5:15] = True
    objects = [DetectedObject((2.0, 3.0, 15.0, 10.0), 0.9, mask), DetectedObject((0.0, 0.0, 20.0, 16.0), 0.8)]
    crops = classifier.crops(image, objects)
    assert crops[0].size == (13, 7) and crops[1].size == (20, 16)
    assert crops[0].getpixel((0, 0)) == (153, 153, 153)  # outside the mask: grey #999
    assert crops[0].getpixel((5, 3)) == image.getpixel((7, 6))  # inside: the image
    colours = classifier(image, objects, "dog")
    expected = (100 * embed(model, processor, images=crops) @ weights).argmax(1)
    assert colours == [P.GENEVAL_COLORS[i] for i in expected] and classifier(image, [], "dog") == []


def test_genevalscorer_runs_end_to_end_on_tiny_checkpoints(mask2former_dir, clip_dir):
    scorer = G.GenEvalScorer.from_pretrained(mask2former_dir, clip_dir, threshold=0.0)
    scorer.detector.test_scale = (64, 48)
    image = picture(32, 24, 4)
    found = scorer.detector([image])[0]
    name = found.labels[int(found.scores.argmax())]  # the class the random detector is surest of
    meta = {"tag": "colors", "include": [{"class": name, "count": 1, "color": "red"}], "prompt": f"a red {name}"}
    result = scorer([meta], [image])[0]
    seen = scorer.color_classifier(image, G.geneval_objects(found, 0.0)[name][:1], name)[0]
    assert result.correct == (seen == "red") and result.tag == "colors"
    assert result.details[name][0][4] == pytest.approx(found.scores.max(), rel=1e-5)


@pytest.fixture(scope="module")
def blip_dir(tmp_path_factory):
    return tiny_blip_vqa(tmp_path_factory.mktemp("blip"))


def test_blip_vqa_is_the_product_of_yes_probabilities_over_noun_phrases(blip_dir):
    from transformers import BlipForQuestionAnswering, BlipProcessor

    scorer = C.BlipVQAScorer.from_pretrained(blip_dir, image_size=None, batch_size=2)
    images = [picture(40, 30, 6), picture(24, 24, 7), picture(30, 40, 8)]
    questions = ["a red cube?", "b?", "a blue ball?"]
    probs = scorer.yes_probability(images, questions)
    assert probs.shape == (3,) and ((probs > 0) & (probs < 1)).all()

    # By hand from the model's parts: the question opens with [ENC], the decoder's first token is [DEC].
    model = BlipForQuestionAnswering.from_pretrained(blip_dir).eval()
    processor = BlipProcessor.from_pretrained(blip_dir)
    tok = processor.tokenizer
    with torch.no_grad():
        for image, question, p in zip(images, questions, probs):
            ids = tok(question, return_tensors="pt")["input_ids"]
            ids[0, 0] = tok.convert_tokens_to_ids("[ENC]")
            vision = model.vision_model(pixel_values=processor(images=image, return_tensors="pt")["pixel_values"])
            text = model.text_encoder(input_ids=ids, encoder_hidden_states=vision.last_hidden_state).last_hidden_state
            logits = model.text_decoder(input_ids=torch.tensor([[tok.convert_tokens_to_ids("[DEC]")]]),
                                        encoder_hidden_states=text).logits[0, 0]
            yes, no = logits.softmax(-1)[tok.convert_tokens_to_ids(["yes", "no"])]
            assert p.item() == pytest.approx((yes / (yes + no)).item(), rel=1e-4)

    prompts = ["a red cube and a blue ball", "it is here", "a cat and a dog and a hat"]
    scores = scorer(prompts, images)
    assert scores[1] == 1.0  # no noun phrase: nothing asked, the product of nothing
    expected = scorer.yes_probability([images[0]] * 2, ["a red cube?", "a blue ball?"]).prod()
    assert scores[0].item() == pytest.approx(expected.item(), rel=1e-5)
    capped = C.BlipVQAScorer.from_pretrained(blip_dir, image_size=None, max_phrases=2)
    assert capped.questions(prompts[2]) == ["a cat?", "a dog?"]  # the first max_phrases only
    given = capped(prompts, images, phrases=[["a red cube"], [], ["a cat", "a dog", "a hat"]])
    want = [scorer.yes_probability(images[:1], ["a red cube?"])[0], torch.tensor(1.0),
            scorer.yes_probability([images[2]] * 2, ["a cat?", "a dog?"]).prod()]
    torch.testing.assert_close(given, torch.stack(want), rtol=1e-5, atol=1e-6)
    one_by_one = C.BlipVQAScorer.from_pretrained(blip_dir, image_size=None, batch_size=1)
    torch.testing.assert_close(one_by_one(prompts, images), scores, rtol=1e-5, atol=1e-6)  # no padding effects
    without_enc = C.BlipVQAScorer.from_pretrained(blip_dir, image_size=None, enc_token=None)
    assert without_enc.enc_token_id is None and not torch.allclose(without_enc.yes_probability(images, questions),
                                                                   probs)
    at_48 = C.BlipVQAScorer.from_pretrained(blip_dir, image_size=48)  # position embeddings interpolated
    assert at_48.yes_probability(images[:1], questions[:1]).shape == (1,)


def test_compbench_clipscore_is_the_plain_cosine(clip_dir):
    from transformers import CLIPModel, CLIPProcessor

    scorer = C.CompBenchCLIPScorer.from_pretrained(clip_dir, batch_size=2)
    prompts = ["a red hat near a cat", "the wooden box", "a blue cup"]
    images = [picture(32, 32, 9), picture(40, 30, 10), picture(30, 40, 11)]
    scores = scorer(prompts, images)
    model, processor = CLIPModel.from_pretrained(clip_dir).eval(), CLIPProcessor.from_pretrained(clip_dir)
    cosine = (embed(model, processor, texts=prompts) * embed(model, processor, images=images)).sum(-1)
    torch.testing.assert_close(scores, cosine, atol=1e-5, rtol=1e-5)
    plain = (embed(model, processor, texts=["a hat near a cat"]) * embed(model, processor, images=images[:1])).sum()
    assert scorer(prompts[:1], images[:1], complex=True).item() == pytest.approx(plain.item(), abs=1e-5)


def test_spatial_scorer_runs_the_detector_and_the_formula(mask2former_dir):
    detector = V.Mask2FormerDetector.from_pretrained(mask2former_dir, test_scale=(64, 48))
    image = picture(32, 32, 12)
    found = detector([image])[0]
    order = np.argsort(-found.scores, kind="stable")
    first = found.labels[order[0]]
    second = next(found.labels[i] for i in order if found.labels[i] != first)
    prompt = f"a {first} next to a {second}"  # 32 px apart at most: "next to" holds
    score = C.SpatialScorer(detector, threshold=0.0)([prompt], [image])
    best = {label: max(s for s, l in zip(found.scores, found.labels) if l == label) for label in (first, second)}
    assert score.item() == pytest.approx(0.25 * best[first] + 0.25 * best[second] + 0.5, rel=1e-5)


@pytest.mark.parametrize("load, checkpoint, how", [
    (V.Mask2FormerDetector.from_pretrained, V.MASK2FORMER_CHECKPOINT, "detector_path="),
    (G.CLIPColorClassifier.from_pretrained, G.GENEVAL_CLIP_CHECKPOINT, "clip_path="),
    (C.BlipVQAScorer.from_pretrained, C.BLIP_VQA_CHECKPOINT, "blip_path="),
    (C.CompBenchCLIPScorer.from_pretrained, C.COMPBENCH_CLIP_CHECKPOINT, "clip_path="),
    (lambda path: G.GenEvalScorer.from_pretrained(detector_path=path), V.MASK2FORMER_CHECKPOINT, "detector_path="),
])
def test_missing_weights_name_the_checkpoint_the_download_and_the_option(tmp_path, load, checkpoint, how):
    with pytest.raises(FileNotFoundError, match="no such directory") as missing:
        load(tmp_path / "absent")
    text = str(missing.value)
    assert checkpoint in text and f"hf download {checkpoint}" in text and how in text and "random weights" in text
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no weights"):
        load(tmp_path)


def test_a_hub_id_that_cannot_be_fetched_is_a_missing_checkpoint():
    with pytest.raises(FileNotFoundError, match=r"hf download nobody/no-such-blip .*BlipVQAScorer\.from_pretrained"):
        C.BlipVQAScorer.from_pretrained("nobody/no-such-blip", local_files_only=True)
