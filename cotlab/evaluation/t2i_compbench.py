"""T2I-CompBench scored through transformers alone, for users who cannot install the official harness (the BLIP
repository, detectron2 + UniDet, spaCy). Official numbers come from the official harness run on `write_generations`'
folders; these scorers follow it rule for rule, and each docstring says where they differ. The rule logic is pure
functions over detections and prompts; the model wrappers are separate classes, each built from a checkpoint with
`from_pretrained` or around a loaded model.

T2I-CompBench (github.com/Karine-Huang/T2I-CompBench), per image, category score = mean over images:
    BLIP-VQA   (color, shape, texture; BLIPvqa_eval/) prod over the prompt's first 8 noun phrases np of
               P(yes | image, "np?") = p_yes / (p_yes + p_no), the answer decoder's first-token probabilities; BLIP
               ViT-B VQA capfilt-large at 480 px. Official noun phrases come from spaCy's `noun_chunks`; here from
               `noun_phrases`, a rule-based chunker (or phrases the caller supplies). Questions are never padded (a
               transformers 5.23 BLIP bug would let the decoder attend to padding; see `BlipVQAScorer._answer`).
    CLIPScore  (non_spatial; CLIPScore_eval/) cos(E_I(image), E_T(prompt)) with CLIP ViT-B/32, not rescaled; for
               complex, the prompt without adjectives (official: spaCy's ADJ tags; here a lexicon, `remove_adjectives`).
    spatial    (spatial; UniDet_eval/2D_spatial_eval.py) objects obj1, obj2 of the prompt, detections at confidence
               > 0.5, the most confident of each class: 0.25 conf(obj1) + 0.25 conf(obj2) + 0.5 position(obj1, obj2),
               0.25 conf of the one found if only one is, 0 if neither; a total under 0.5 counts 0. position as
               `determine_position` (distance threshold 150 px in UniDet's ~480 px input frame, IoU threshold 0.1).
               Official detector: UniDet (a unified label space of ~700 classes); here the COCO Mask2Former above, so
               an object outside COCO's 80 classes is never found: expect lower scores than the official ones.
    3-in-1     (complex; 3_in_1_eval/) the mean of the BLIP-VQA score and the spatial score (spatial prompts), the
               CLIP score (action prompts), or both (the rest), as `complex_val_{spatial,action}.txt` sort them.
    numeracy and 3d_spatial (UniDet with depth) have no scorer here: use the official harness.

Checkpoints load with `from_pretrained` from a local directory or a hub id, never falling back to random weights
(`cotlab.checkpoints`): a missing checkpoint is a FileNotFoundError naming it, how to download it, and how to point
cotlab at it.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from cotlab.checkpoints import load_clip, load_pretrained
from cotlab.evaluation.benchmarks import read_compbench_folder
from cotlab.evaluation.vision import MASK2FORMER_CHECKPOINT, Detections, Mask2FormerDetector, clip_embeddings
from cotlab.prompt_files import COMPLEX_KINDS, GENEVAL_RENAMED
from cotlab.rewards.real import CLIP_CHECKPOINT

BLIP_VQA_CHECKPOINT = "Salesforce/blip-vqa-capfilt-large"  # BLIP's model_base_vqa_capfilt_large, as T2I-CompBench uses
COMPBENCH_CLIP_CHECKPOINT = CLIP_CHECKPOINT  # openai/clip-vit-base-patch32


# ---------------------------------------------------------------------------------------------------------------------
# Noun phrases, questions, adjectives


NP_EXCLUDED = ("top", "the side", "the left", "the right")  # phrases the official BLIP-VQA script never asks about
_DETERMINERS = {"a", "an", "the", "this", "these", "those", "my", "your", "his", "her", "its", "our", "their", "some",
                "each", "every", "another", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten", "several", "many", "few", "no", "both", "all"}
_PREPOSITIONS = {"on", "in", "at", "of", "with", "by", "near", "under", "above", "below", "behind", "beside", "besides",
                 "between", "among", "into", "onto", "over", "across", "through", "from", "to", "for", "against",
                 "along", "around", "inside", "outside", "atop", "beneath", "underneath", "within", "without",
                 "toward", "towards", "next", "front", "up", "down", "off", "out", "about", "like", "after", "before",
                 "during", "upon", "beyond", "past", "via"}
_CONJUNCTIONS = {"and", "or", "but", "nor", "as", "so", "then", "than", "because", "where", "when", "that", "which",
                 "who", "whom", "whose", "while", "if", "whilst"}
_AUXILIARIES = {"is", "are", "was", "were", "be", "been", "being", "am", "has", "have", "had", "do", "does", "did",
                "can", "could", "will", "would", "shall", "should", "may", "might", "must", "'s"}
_PRONOUNS = {"it", "they", "them", "he", "she", "him", "we", "us", "you", "i", "me", "itself", "themselves", "there",
             "here", "each other"}
_COMMON_VERBS = {"sits", "stands", "lies", "rests", "hangs", "sat", "stood", "lay", "hung", "holds", "held", "looks",
                 "seems", "appears", "leans", "floats", "flies", "runs", "walks", "plays", "sleeps", "eats", "stays",
                 "waits", "sit", "stand", "lie", "rest", "hang", "hold"}
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*|[^\sA-Za-z0-9]")


def _boundary(word: str) -> bool:
    return (word in _PREPOSITIONS or word in _CONJUNCTIONS or word in _AUXILIARIES or word in _PRONOUNS
            or not word[0].isalnum())


_ING_NOUNS = {"painting", "building", "clothing", "ceiling", "pudding", "evening", "morning", "wedding", "icing",
              "frosting", "bedding", "railing", "awning", "dumpling", "sibling", "duckling", "earring", "sapling",
              "seedling", "stuffing", "filling", "drawing", "carving", "lightning", "string", "swing", "spring",
              "wing", "thing", "offspring", "stocking", "topping", "dressing", "crossing", "landing", "opening",
              "clearing", "sculpting", "blessing", "wrapping", "shopping", "lighting", "setting", "ending"}


def _verbish(word: str) -> bool:
    """A verb form that ends a noun phrase: a common verb or an -ing word (not one of the common -ing nouns)."""
    return word in _COMMON_VERBS or (len(word) > 4 and word.endswith("ing") and word not in _ING_NOUNS)


def _past(word: str) -> bool:
    return len(word) > 4 and word.endswith("ed")


def noun_phrases(prompt: str) -> list[str]:
    """The prompt's noun phrases, in order: a small rule-based stand-in for spaCy's `noun_chunks`, which the official
    BLIP-VQA script uses (cotlab does not depend on spaCy).

    Rules: words are split at punctuation, prepositions, conjunctions, auxiliaries and pronouns; a run of the other
    words is a phrase, and a determiner inside a run starts a new one; trailing -ing and -ed words after a noun are
    verbs and dropped ("a man riding a horse" -> "a man", "a horse"; "the boots contrasted with" -> "the boots"),
    except common -ing nouns ("painting", "building"); a run right after an auxiliary that does not start with a
    determiner is a verb ("is playing") and dropped; the official script's excluded phrases ("top", "the side", "the
    left", "the right") are dropped. It agrees with spaCy on the templated attribute prompts ("a green bench and a red
    car") but can differ on free sentences (it keeps a present-tense verb inside a phrase: "the cat sleeps"). Pass
    the phrases yourself (`phrases=` of `BlipVQAScorer`) to score with spaCy's or hand-made ones."""
    phrases = []
    run: list[str] = []
    before = None

    def flush():
        nonlocal run
        words = run
        run = []
        if not words:
            return
        if words[0].lower() not in _DETERMINERS and before in _AUXILIARIES:
            return  # "is playing"
        while len(words) > 1 and words[-2].lower() not in _DETERMINERS and (
                _past(words[-1].lower()) or _verbish(words[-1].lower())):
            words = words[:-1]  # a verb after the noun: "the boots contrasted", "a man riding", "a vase sitting"
        if len(words) == 1 and _verbish(words[0].lower()):
            return  # a lone verb
        text = " ".join(words)
        if text.lower() not in NP_EXCLUDED and not all(w.lower() in _DETERMINERS for w in words):
            phrases.append(text)

    for token in _TOKEN.findall(prompt):
        word = token.lower()
        if _boundary(word):
            flush()
            before = word
        elif word in _DETERMINERS and run and any(w.lower() not in _DETERMINERS for w in run):
            flush()
            before = None
            run = [token]
        else:
            run.append(token)
    flush()
    return phrases


def pre_question(question: str, max_words: int = 50) -> str:
    """BLIP's question normalisation (`data/utils.py: pre_question`): lower case, the characters . ! " ( ) * # : ; ~
    removed, trailing spaces stripped, at most `max_words` words."""
    question = re.sub(r"([.!\"()*#:;~])", "", question.lower()).rstrip(" ")
    words = question.split(" ")
    return " ".join(words[:max_words]) if len(words) > max_words else question


# Adjectives that spaCy's tagger marks ADJ in T2I-CompBench-style prompts: colours, shapes, materials and textures,
# sizes, and common descriptive adjectives. A lexicon, not a tagger: an adjective missing here stays in the prompt.
ADJECTIVES = frozenset("""
red orange yellow green blue purple pink brown black white gray grey silver golden beige violet turquoise crimson
scarlet maroon navy teal cyan magenta lavender ivory tan olive colorful colourful multicolored transparent dark light
bright pale vibrant
round square rectangular circular triangular oval spherical cubic cylindrical conical pyramidal hexagonal pentagonal
octagonal diamond-shaped heart-shaped star-shaped oblong curved straight flat pointed
wooden metallic leather fluffy furry plastic glass rubber fabric woolen wool silk silky velvet cotton denim ceramic
marble stone concrete paper cardboard steel iron golden crystal glossy shiny smooth rough soft hard fuzzy feathery
sparkly bumpy wrinkled knitted
big small large tiny huge giant little tall short long wide narrow thick thin heavy
old new young ancient modern vintage antique beautiful pretty cute ugly happy sad angry fierce cozy comfortable
delicious fresh ripe hot cold warm cool wet dry clean dirty empty full broken open closed wild sleek elegant fancy
majestic mysterious quiet loud busy sleepy curious playful tidy messy rusty dusty fuzzy striped spotted checkered
""".split())


def remove_adjectives(prompt: str, adjectives=ADJECTIVES) -> str:
    """The prompt without its adjectives, as T2I-CompBench's CLIPScore scores complex prompts (official: tokens that
    spaCy tags ADJ, rejoined with spaces); here the words of the `adjectives` lexicon (case-insensitive)."""
    return " ".join(t for t in _TOKEN.findall(prompt) if t.lower() not in adjectives)


# ---------------------------------------------------------------------------------------------------------------------
# BLIP-VQA


class BlipVQAScorer:
    """T2I-CompBench's BLIP-VQA score (BLIPvqa_eval/BLIP_vqa.py) with a transformers `BlipForQuestionAnswering`
    (default checkpoint Salesforce/blip-vqa-capfilt-large, BLIP's model_base_vqa_capfilt_large that T2I-CompBench
    loads):

        score(image, prompt) = prod_{np in the prompt's first `max_phrases` noun phrases} P(yes | image, "np?"),
        P(yes | image, q) = p_yes / (p_yes + p_no),

    p the answer decoder's softmax over its vocabulary at the first answer position (after its bos token), given the
    question encoded against the image (BLIP_VQA.vqa_prob). As the original: images resized to `image_size` x
    `image_size` (480; bicubic, CLIP normalisation; position embeddings interpolated when the checkpoint's are for
    another size), the question through `pre_question` and truncated to 35 tokens (never padded: see `_answer`), its
    first token replaced by `enc_token` ("[ENC]", BLIP's image-grounded-encoder token) when the tokenizer has it; a
    tokenizer without it keeps [CLS] (as transformers' own BLIP VQA does), and `self.enc_token_id` is None. A prompt
    with no noun phrase scores 1, as in the original."""

    def __init__(self, model, processor, *, image_size: int | None = 480, max_phrases: int = 8, batch_size: int = 16,
                 question_max_length: int = 35, enc_token: str | None = "[ENC]", yes_token: str = "yes",
                 no_token: str = "no", name: str = "blip_vqa"):
        if batch_size < 1 or max_phrases < 1:
            raise ValueError(f"batch_size and max_phrases must be at least 1, got {batch_size}, {max_phrases}")
        self.model, self.processor, self.name = model.eval(), processor, name
        tokenizer = processor.tokenizer
        self.image_size, self.max_phrases, self.batch_size = image_size, int(max_phrases), int(batch_size)
        self.question_max_length = int(question_max_length)
        self.answer_ids = [self._single_token(yes_token), self._single_token(no_token)]
        enc_id = tokenizer.convert_tokens_to_ids(enc_token) if enc_token else None
        self.enc_token_id = None if enc_id is None or enc_id == tokenizer.unk_token_id else int(enc_id)
        self.bos_token_id = model.config.text_config.bos_token_id

    @classmethod
    def from_pretrained(cls, path=BLIP_VQA_CHECKPOINT, *, device: str = "cpu", dtype="float32",
                        local_files_only: bool = False, **options) -> "BlipVQAScorer":
        """The scorer with the BLIP VQA checkpoint at `path`; `options` are the constructor's."""
        from transformers import BlipForQuestionAnswering, BlipProcessor

        model, processor = load_pretrained(
            "BlipVQAScorer", path, BLIP_VQA_CHECKPOINT,
            "`BlipVQAScorer.from_pretrained({dir})` (or `blip_path={dir}` of CompBenchScorer.from_pretrained)",
            BlipForQuestionAnswering, BlipProcessor, device=device, dtype=dtype, local_files_only=local_files_only)
        return cls(model, processor, **options)

    def _single_token(self, word: str) -> int:
        ids = self.processor.tokenizer.encode(word, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"answer word {word!r} is {len(ids)} tokens for this BLIP's tokenizer; it must be one")
        return ids[0]

    def _image_embeds(self, images) -> torch.Tensor:
        kwargs = {}
        native = self.model.config.vision_config.image_size
        if self.image_size is not None:
            kwargs["size"] = {"height": self.image_size, "width": self.image_size}
        pixels = self.processor.image_processor(images=[im.convert("RGB") for im in images], return_tensors="pt",
                                                **kwargs)["pixel_values"]
        interpolate = tuple(pixels.shape[-2:]) != (native, native)
        return self.model.vision_model(pixel_values=pixels.to(self.model.device, dtype=self.model.dtype),
                                       interpolate_pos_encoding=interpolate).last_hidden_state

    def yes_probability(self, images, questions) -> torch.Tensor:
        """P(yes | image_i, question_i) for aligned lists; questions are used as given (no `pre_question`)."""
        images, questions = list(images), list(questions)
        if len(images) != len(questions):
            raise ValueError(f"{len(images)} images and {len(questions)} questions")
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                embeds = self._image_embeds(images[start:start + self.batch_size])
                out.append(self._answer(embeds, questions[start:start + self.batch_size]))
        return torch.cat(out) if out else torch.zeros(0)

    def _answer(self, image_embeds: torch.Tensor, questions: list[str]) -> torch.Tensor:
        """P(yes) for question i about image_embeds[i]. Questions of one token length share a forward pass and none is
        padded: in transformers 5.23 the BLIP text layers drop the cross-attention mask (`BlipTextLayer` passes it as
        `attention_mask`, and `BlipTextSelfAttention` masks cross-attention with `encoder_attention_mask`, which
        never arrives), so the answer decoder would attend to a padded question's padding; the original does not."""
        encoded = self.processor.tokenizer(questions, truncation=True, max_length=self.question_max_length)["input_ids"]
        out = torch.zeros(len(questions))
        lengths: dict[int, list[int]] = {}
        for i, ids in enumerate(encoded):
            lengths.setdefault(len(ids), []).append(i)
        device = image_embeds.device
        for rows in lengths.values():
            input_ids = torch.tensor([encoded[i] for i in rows], dtype=torch.long, device=device)
            if self.enc_token_id is not None:
                input_ids[:, 0] = self.enc_token_id
            embeds = image_embeds[torch.tensor(rows, device=device)]
            image_mask = torch.ones(embeds.shape[:-1], dtype=torch.long, device=device)
            question = self.model.text_encoder(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                               encoder_hidden_states=embeds,
                                               encoder_attention_mask=image_mask).last_hidden_state
            bos = torch.full((len(rows), 1), self.bos_token_id, dtype=torch.long, device=device)
            logits = self.model.text_decoder(input_ids=bos, encoder_hidden_states=question,
                                             encoder_attention_mask=torch.ones_like(input_ids)).logits[:, 0].float()
            out[rows] = logits[:, self.answer_ids].softmax(-1)[:, 0].cpu()  # p_yes / (p_yes + p_no)
        return out

    def questions(self, prompt: str, phrases: Sequence[str] | None = None) -> list[str]:
        """The questions asked about an image of `prompt`: "np?" for its first `max_phrases` noun phrases."""
        phrases = noun_phrases(prompt) if phrases is None else list(phrases)
        return [pre_question(f"{p}?") for p in phrases[:self.max_phrases]]

    def __call__(self, prompts, images, phrases: Sequence[Sequence[str]] | None = None) -> torch.Tensor:
        prompts, images = list(prompts), list(images)
        if len(prompts) != len(images) or (phrases is not None and len(phrases) != len(prompts)):
            raise ValueError(f"BLIP-VQA got {len(prompts)} prompts, {len(images)} images"
                             + ("" if phrases is None else f" and {len(phrases)} phrase lists"))
        scores = torch.ones(len(prompts))
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                rows = range(start, min(start + self.batch_size, len(images)))
                asked = [(k, q) for k, i in enumerate(rows)
                         for q in self.questions(prompts[i], None if phrases is None else phrases[i])]
                if not asked:
                    continue
                embeds = self._image_embeds([images[i] for i in rows])
                for first in range(0, len(asked), self.batch_size):
                    chunk = asked[first:first + self.batch_size]
                    which = torch.tensor([k for k, _ in chunk], device=embeds.device)
                    probs = self._answer(embeds[which], [q for _, q in chunk])
                    for (k, _), p in zip(chunk, probs):
                        scores[start + k] *= p
        return scores


# ---------------------------------------------------------------------------------------------------------------------
# CLIPScore


class CompBenchCLIPScorer:
    """T2I-CompBench's CLIPScore (CLIPScore_eval/CLIP_similarity.py): cos(E_I(image), E_T(text)) with CLIP ViT-B/32,
    not rescaled and not clipped (unlike `cotlab.rewards.CLIPScore`'s 2.5 max(cos, 0)); text = the prompt, or for the
    complex category (`complex=True`) the prompt without adjectives (`remove_adjectives`). Texts longer than CLIP's 77
    tokens are truncated (the original would raise)."""

    def __init__(self, model, processor, *, batch_size: int = 32, name: str = "compbench_clip"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model, self.processor, self.batch_size, self.name = model.eval(), processor, int(batch_size), name

    @classmethod
    def from_pretrained(cls, path=COMPBENCH_CLIP_CHECKPOINT, *, device: str = "cpu", dtype="float32",
                        local_files_only: bool = False, **options) -> "CompBenchCLIPScorer":
        """The scorer with the CLIP at `path`; `options` are the constructor's."""
        model, processor = load_clip(
            "CompBenchCLIPScorer", path, COMPBENCH_CLIP_CHECKPOINT,
            "`CompBenchCLIPScorer.from_pretrained({dir})` (or `clip_path={dir}` of CompBenchScorer.from_pretrained)",
            device=device, dtype=dtype, local_files_only=local_files_only)
        return cls(model, processor, **options)

    def __call__(self, prompts, images, *, complex: bool = False) -> torch.Tensor:
        prompts, images = list(prompts), list(images)
        if len(prompts) != len(images):
            raise ValueError(f"CLIPScore got {len(prompts)} prompts and {len(images)} images")
        texts = [remove_adjectives(p) if complex else p for p in prompts]
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                stop = start + self.batch_size
                text = clip_embeddings(self.model, self.processor, texts=texts[start:stop])
                image = clip_embeddings(self.model, self.processor,
                                        images=[im.convert("RGB") for im in images[start:stop]])
                out.append((text * image).sum(-1))
        return torch.cat(out) if out else torch.zeros(0)


# ---------------------------------------------------------------------------------------------------------------------
# Spatial


SPATIAL_VOCAB = ("on side of", "next to", "near", "on the left of", "on the right of", "on the bottom of",
                 "on the top of", "on top of")  # the official order: the first one in the prompt is its relation
COMPLEX_PREPOSITIONS = ("on top of", "on bottom of", "on the left", "on the right", "next to", "on side of", "near")
PERSON_WORDS = ("girl", "boy", "man", "woman")  # the official script detects these as "person"
UNIDET_SHORT, UNIDET_MAX = 479, 480  # UniDet's input: Resize(size=479, max_size=480)
SPATIAL_THRESHOLD = 0.5  # UniDet's confidence threshold in the official script


def spatial_relation(prompt: str) -> str | None:
    """The prompt's relation: the first of SPATIAL_VOCAB found in it as a substring (as the official script)."""
    for word in SPATIAL_VOCAB:
        if word in prompt:
            return word
    return None


def determine_position(locality: str | None, box1, box2, *, iou_threshold: float = 0.1,
                       distance_threshold: float = 150) -> float:
    """T2I-CompBench's soft position score of box1 (obj1) relative to box2 (obj2), boxes (x1, y1, x2, y2), with
    d = centre2 - centre1 (2D_spatial_eval.py: `determine_position`):

        next to / on side of / near   1 if |d_x| < T or |d_y| < T, else T / max(|d_x|, |d_y|)  (T: distance_threshold)
        on the right of               d_x < 0 and |d_x| > |d_y|: 1 if IoU < t else t / IoU     (t: iou_threshold)
        on the left of                d_x > 0 and |d_x| > |d_y|: as above
        on the bottom of              d_y < 0 and |d_y| > |d_x|: as above
        on the top of                 d_y > 0 and |d_y| > |d_x|: as above
        anything else                 0 (the official code has no branch for "on top of", which it detects as a
                                      relation: such prompts score 0 here too)"""
    c1 = ((box1[0] + box1[2]) / 2, (box1[1] + box1[3]) / 2)
    c2 = ((box2[0] + box2[2]) / 2, (box2[1] + box2[3]) / 2)
    dx, dy = c2[0] - c1[0], c2[1] - c1[1]
    inter = (max(0.0, min(box1[2], box2[2]) - max(box1[0], box2[0]))
             * max(0.0, min(box1[3], box2[3]) - max(box1[1], box2[1])))
    union = (box1[2] - box1[0]) * (box1[3] - box1[1]) + (box2[2] - box2[0]) * (box2[3] - box2[1]) - inter
    iou = inter / union if union > 0 else 0.0

    def overlap_score() -> float:
        return 1.0 if iou < iou_threshold else iou_threshold / iou

    if locality in ("next to", "on side of", "near"):
        if abs(dx) < distance_threshold or abs(dy) < distance_threshold:
            return 1.0
        return distance_threshold / max(abs(dx), abs(dy))
    if locality == "on the right of":
        return overlap_score() if dx < 0 and abs(dx) > abs(dy) else 0.0
    if locality == "on the left of":
        return overlap_score() if dx > 0 and abs(dx) > abs(dy) else 0.0
    if locality == "on the bottom of":
        return overlap_score() if dy < 0 and abs(dy) > abs(dx) else 0.0
    if locality == "on the top of":
        return overlap_score() if dy > 0 and abs(dy) > abs(dx) else 0.0
    return 0.0


def unidet_frame(width: int, height: int) -> tuple[float, float]:
    """(x, y) factors from an image's pixels to UniDet's input frame (torchvision Resize(479, max_size=480)), where the
    official distance threshold of 150 px applies."""
    short, long = min(width, height), max(width, height)
    new_short, new_long = UNIDET_SHORT, int(UNIDET_SHORT * long / short)
    if new_long > UNIDET_MAX:
        new_short, new_long = int(UNIDET_MAX * new_short / new_long), UNIDET_MAX
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    return new_w / width, new_h / height


_STOP_BEFORE = _DETERMINERS | _AUXILIARIES | _CONJUNCTIONS | _PRONOUNS | {"not", "also", "just", "still"}


def _content(words: list[str]) -> list[str]:
    return [w for w in words if w[0].isalnum()]


def _head(words: list[str], labels: frozenset) -> str | None:
    """The head of a phrase: its last word, or its last two words when they form a detector class ("teddy bear")."""
    words = _content(words)
    if not words:
        return None
    if len(words) >= 2 and f"{words[-2]} {words[-1]}" in labels:
        return f"{words[-2]} {words[-1]}"
    return words[-1]


def _find(words: list[str], phrase: str, start: int = 0) -> int:
    parts = phrase.split()
    for i in range(start, len(words) - len(parts) + 1):
        if words[i:i + len(parts)] == parts:
            return i
    return -1


def spatial_objects(prompt: str, *, complex: bool = False, labels: Sequence[str] = ()) -> tuple[str | None, str | None]:
    """(obj1, obj2) of a spatial prompt, the objects whose boxes `determine_position` compares.

    Official (spaCy POS tags): simple prompts take the first and the last noun; complex prompts take, around each of
    COMPLEX_PREPOSITIONS, the nearest noun before it and the first noun after it, and need exactly two. Here, without
    a tagger: simple prompts take the head of the words before the relation and of the words after it; complex prompts
    take the nearest word before the preposition that is not a determiner, auxiliary, pronoun, -ing or -ed word
    or common verb, and the head of the phrase after it (up to punctuation, a preposition or a conjunction). A head is
    the last word, or the last two when they name a detector class in `labels` ("teddy bear", "wine glass"), where
    spaCy's first noun would be "teddy"."""
    labels = frozenset(labels)
    words = [t.lower() for t in _TOKEN.findall(prompt)]
    if not complex:
        relation = spatial_relation(prompt.lower())
        at = _find(words, relation) if relation else -1
        if at < 0:
            found = noun_phrases(prompt)
            if not found:
                return None, None
            first, last = found[0].lower().split(), found[-1].lower().split()
            return _head(first, labels), _head(last, labels)
        return _head(words[:at], labels), _head(words[at + len(relation.split()):], labels)
    objects = []
    i = 0
    while i < len(words):
        match = next((p for p in COMPLEX_PREPOSITIONS if words[i:i + len(p.split())] == p.split()), None)
        if match is None:
            i += 1
            continue
        size = len(match.split())
        for w in reversed(words[:i]):
            if not w[0].isalnum():
                break
            if w in _STOP_BEFORE or _verbish(w) or _past(w):
                continue
            objects.append(w)
            break
        after = []
        for w in words[i + size:]:
            if not after and (w in _DETERMINERS or w == "of"):  # "on the left" + "of the table"
                continue
            if not w[0].isalnum() or _boundary(w) or w in _DETERMINERS:
                break
            after.append(w)
        head = _head(after, labels)
        if head:
            objects.append(head)
        i += size
    return (objects[0], objects[1]) if len(objects) == 2 else (None, None)


_COCO_NAME = {geneval: coco for coco, geneval in GENEVAL_RENAMED.items()}


def _first_detection(noun: str | None, detections: Detections, threshold: float) -> int | None:
    """The most confident detection above `threshold` named `noun` (person words count as "person"; a detector label
    also answers to its COCO name, "mouse" for "computer mouse")."""
    if noun is None:
        return None
    noun = "person" if noun in PERSON_WORDS else noun
    best = None
    for i, label in enumerate(detections.labels):
        if (detections.scores[i] > threshold and noun in (label, _COCO_NAME.get(label))
                and (best is None or detections.scores[i] > detections.scores[best])):
            best = i
    return best


def spatial_score(prompt: str, detections: Detections, image_size: tuple[int, int], *, complex: bool = False,
                  threshold: float = SPATIAL_THRESHOLD) -> float:
    """T2I-CompBench's 2D spatial score of one image (2D_spatial_eval.py):

        both objects found   0.25 conf(obj1) + 0.25 conf(obj2) + 0.5 determine_position(relation, box1, box2)
        one found            0.25 conf(that one)
        neither              0
        and 0 if the total is under 0.5,

    with boxes mapped to UniDet's input frame (`unidet_frame`) so that the 150 px threshold means what it does there,
    and each object the most confident detection of its class above `threshold` (UniDet's 0.5)."""
    obj1, obj2 = spatial_objects(prompt, complex=complex, labels=set(detections.labels))
    first, second = _first_detection(obj1, detections, threshold), _first_detection(obj2, detections, threshold)
    if first is not None and second is not None:
        sx, sy = unidet_frame(*image_size)
        scale = np.array([sx, sy, sx, sy])
        score = 0.25 * detections.scores[first] + 0.25 * detections.scores[second]
        score += determine_position(spatial_relation(prompt), detections.boxes[first] * scale,
                                    detections.boxes[second] * scale) / 2
    elif first is not None:
        score = 0.25 * detections.scores[first]
    elif second is not None:
        score = 0.25 * detections.scores[second]
    else:
        score = 0.0
    return float(score) if score >= 0.5 else 0.0


class SpatialScorer:
    """T2I-CompBench's 2D spatial score (`spatial_score`) with `detector(images) -> list[Detections]` (default the
    COCO `Mask2FormerDetector`; the official one is UniDet, whose ~700 classes cover objects COCO lacks)."""

    def __init__(self, detector, *, threshold: float = SPATIAL_THRESHOLD, batch_size: int = 8):
        self.detector, self.threshold, self.batch_size = detector, float(threshold), int(batch_size)

    @classmethod
    def from_pretrained(cls, detector_path=MASK2FORMER_CHECKPOINT, *, device: str = "cpu", dtype="float32",
                        local_files_only: bool = False, **options) -> "SpatialScorer":
        return cls(Mask2FormerDetector.from_pretrained(detector_path, device=device, dtype=dtype,
                                                       local_files_only=local_files_only), **options)

    def __call__(self, prompts, images, *, complex: bool = False) -> torch.Tensor:
        prompts, images = list(prompts), list(images)
        if len(prompts) != len(images):
            raise ValueError(f"spatial scorer got {len(prompts)} prompts and {len(images)} images")
        scores = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start:start + self.batch_size]
            for prompt, image, found in zip(prompts[start:start + self.batch_size], batch, self.detector(batch)):
                scores.append(spatial_score(prompt, found, image.size, complex=complex, threshold=self.threshold))
        return torch.tensor(scores, dtype=torch.float32)


# ---------------------------------------------------------------------------------------------------------------------
# 3-in-1 and the per-category scorer


def three_in_one(attribute, spatial, action, kinds: Sequence[str] | None = None) -> torch.Tensor:
    """T2I-CompBench's complex score (3_in_1_eval/3_in_1.py), per image: (attribute + spatial) / 2 for a "spatial"
    prompt, (attribute + action) / 2 for an "action" one, (attribute + spatial + action) / 3 for "spatial_action"
    (the default for every image when `kinds` is None). attribute = BLIP-VQA, spatial = the spatial score (complex
    object extraction), action = CLIPScore (complex text)."""
    attribute, spatial, action = (torch.as_tensor(x, dtype=torch.float32) for x in (attribute, spatial, action))
    if not attribute.shape == spatial.shape == action.shape:
        raise ValueError(f"3-in-1 needs one score of each kind per image, got shapes {tuple(attribute.shape)}, "
                         f"{tuple(spatial.shape)}, {tuple(action.shape)}")
    kinds = ["spatial_action"] * len(attribute) if kinds is None else list(kinds)
    if len(kinds) != len(attribute) or any(k not in COMPLEX_KINDS for k in kinds):
        raise ValueError(f"kinds must be {len(attribute)} values among {', '.join(COMPLEX_KINDS)}")
    out = (attribute + spatial + action) / 3
    for i, kind in enumerate(kinds):
        if kind == "spatial":
            out[i] = (attribute[i] + spatial[i]) / 2
        elif kind == "action":
            out[i] = (attribute[i] + action[i]) / 2
    return out


COMPBENCH_METRICS = {"color": "blip_vqa", "shape": "blip_vqa", "texture": "blip_vqa", "spatial": "spatial",
                     "non_spatial": "clip", "complex": "3_in_1"}


class CompBenchScorer:
    """T2I-CompBench's metric for each category it covers (COMPBENCH_METRICS): BLIP-VQA for color, shape, texture;
    the spatial score for spatial; CLIPScore for non_spatial; 3-in-1 for complex. numeracy and 3d_spatial need UniDet
    (and a depth model) and have no scorer here. Any of the three models may be None if its categories are not
    scored."""

    def __init__(self, blip: BlipVQAScorer | None = None, clip: CompBenchCLIPScorer | None = None,
                 spatial: SpatialScorer | None = None):
        self.blip, self.clip, self.spatial = blip, clip, spatial

    @classmethod
    def from_pretrained(cls, categories: Sequence[str] = tuple(COMPBENCH_METRICS), *, blip_path=BLIP_VQA_CHECKPOINT,
                        clip_path=COMPBENCH_CLIP_CHECKPOINT, detector_path=MASK2FORMER_CHECKPOINT, device: str = "cpu",
                        dtype="float32", local_files_only: bool = False) -> "CompBenchScorer":
        """The models that `categories` need, and only those."""
        metrics = {_metric(c) for c in categories}
        common = dict(device=device, dtype=dtype, local_files_only=local_files_only)
        return cls(BlipVQAScorer.from_pretrained(blip_path, **common) if metrics & {"blip_vqa", "3_in_1"} else None,
                   CompBenchCLIPScorer.from_pretrained(clip_path, **common) if metrics & {"clip", "3_in_1"} else None,
                   SpatialScorer.from_pretrained(detector_path, **common) if metrics & {"spatial", "3_in_1"} else None)

    def _need(self, model, what: str, category: str):
        if model is None:
            raise ValueError(f"scoring {category!r} needs the {what}; this CompBenchScorer was built without it")
        return model

    def __call__(self, category: str, prompts, images, *,
                 kinds: Sequence[str] | Mapping[str, str] | None = None) -> torch.Tensor:
        """One score per (prompt, image) in [0, 1] (CLIPScore: a cosine); `kinds` (complex only) is one of
        COMPLEX_KINDS per image, or a mapping from prompt to kind (`load_complex_kinds`), or None (all
        "spatial_action")."""
        metric = _metric(category)
        prompts, images = list(prompts), list(images)
        if metric == "blip_vqa":
            return self._need(self.blip, "BLIP-VQA model", category)(prompts, images)
        if metric == "spatial":
            return self._need(self.spatial, "detector", category)(prompts, images)
        if metric == "clip":
            return self._need(self.clip, "CLIP", category)(prompts, images)
        if isinstance(kinds, Mapping):
            unknown = sorted({p for p in prompts if p not in kinds})
            if unknown:
                raise ValueError(f"no 3-in-1 kind for prompt(s) {unknown[:3]}")
            kinds = [kinds[p] for p in prompts]
        return three_in_one(self._need(self.blip, "BLIP-VQA model", category)(prompts, images),
                            self._need(self.spatial, "detector", category)(prompts, images, complex=True),
                            self._need(self.clip, "CLIP", category)(prompts, images, complex=True), kinds)

    def score_folder(self, folder, category: str, *, kinds: Mapping[str, str] | None = None, batch_images: int = 64,
                     progress: bool = True) -> pd.DataFrame:
        """Every image of `<folder>/samples` (`read_compbench_folder`): one row per image with question_id, prompt,
        image and score; the category score is the mean of "score"."""
        rows = read_compbench_folder(folder)
        scores = []
        for start in tqdm(range(0, len(rows), batch_images), desc=f"T2I-CompBench {category}", disable=not progress,
                          leave=False):
            chunk = rows[start:start + batch_images]
            images = [Image.open(path).convert("RGB") for _, _, path in chunk]
            scores += self(category, [p for p, _, _ in chunk], images, kinds=kinds).tolist()
        return pd.DataFrame({"question_id": [q for _, q, _ in rows], "prompt": [p for p, _, _ in rows],
                             "image": [str(path) for _, _, path in rows], "score": scores})


def _metric(category: str) -> str:
    if category in ("numeracy", "3d_spatial"):
        raise ValueError(f"cotlab has no transformers scorer for T2I-CompBench's {category!r} (the official one uses "
                         f"UniDet{' and a depth model' if category == '3d_spatial' else ''}); score it with the "
                         f"official harness, github.com/Karine-Huang/T2I-CompBench")
    if category not in COMPBENCH_METRICS:
        raise ValueError(f"unknown T2I-CompBench category {category!r}; scored here: {', '.join(COMPBENCH_METRICS)}")
    return COMPBENCH_METRICS[category]


__all__ = ["ADJECTIVES", "BLIP_VQA_CHECKPOINT", "BlipVQAScorer", "COMPBENCH_CLIP_CHECKPOINT", "COMPBENCH_METRICS",
           "COMPLEX_PREPOSITIONS", "CompBenchCLIPScorer", "CompBenchScorer", "NP_EXCLUDED", "SPATIAL_THRESHOLD",
           "SPATIAL_VOCAB", "SpatialScorer", "determine_position", "noun_phrases", "pre_question", "remove_adjectives",
           "spatial_objects", "spatial_relation", "spatial_score", "three_in_one", "unidet_frame"]
