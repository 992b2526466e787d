"""ShapeWorld's language: a closed vocabulary, a small grammar, and the structured meaning of a prompt.

A prompt means a `PromptSpec`: entities (noun phrases with the attributes they name and a count) and relations
between single entities. `parse_prompt(text)` reads any sentence of the grammar below; the suites and the pretraining
captions are all sentences of it, and the scorer works from the meaning, never from the template.

    prompt   := [prefix] clause (joiner clause)* ["."]
    prefix   := "a photo of" | "an image of" | "a picture of" | "there is" | "there are"
    joiner   := "and" | "," | ", and" | "with" | "together with"
    clause   := phrase [relation phrase]            (relations join single objects: a / an / one)
    phrase   := determiner adjective* noun          (at most one adjective of each kind)
    determiner := a | an | one | two | three | four
    adjective  := colour | texture | size | shape adjective (square, round, triangular, diamond, cross-shaped)
    noun       := shape noun (square, circle, ...; plural with numerals) | object(s) | shape(s) | thing(s)

Counting semantics follow GenEval: "a" means at least one; a numeral means exactly that many objects matching the
phrase (GenEval's include N / exclude N+1).

A prompt is at most `MAX_PROMPT_CHARS` (1000) characters, checked before anything else: eight times the longest suite
prompt (119 characters, 20 words), and room for 16 objects (the most the grid holds) in long phrases. Errors quote at
most `EXCERPT_CHARS` (60) characters of a prompt.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from .scene import COLOR_NAMES

SHAPE_NOUNS = {"square": "square", "circle": "circle", "triangle": "triangle", "diamond": "diamond", "cross": "cross"}
SHAPE_PLURALS = {"squares": "square", "circles": "circle", "triangles": "triangle", "diamonds": "diamond",
                 "crosses": "cross"}
SHAPE_ADJECTIVES = {"square": "square", "round": "circle", "triangular": "triangle", "diamond": "diamond",
                    "cross-shaped": "cross"}
GENERIC_NOUNS = {"object": 1, "shape": 1, "thing": 1, "objects": 2, "shapes": 2, "things": 2}  # 2 = plural
TEXTURE_WORDS = {"solid": "solid", "plain": "solid", "striped": "striped", "dotted": "dotted", "spotted": "dotted"}
SIZE_WORDS = {"small": "small", "tiny": "small", "little": "small", "large": "large", "big": "large"}
COLOR_WORDS = {c: c for c in COLOR_NAMES}
DETERMINERS = {"a": (1, False), "an": (1, False), "one": (1, True), "two": (2, True), "three": (3, True),
               "four": (4, True)}
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
MAX_PROMPT_CHARS = 1000
EXCERPT_CHARS = 60
PHRASE_WORDS = (set(SHAPE_NOUNS) | set(SHAPE_PLURALS) | set(SHAPE_ADJECTIVES) | set(GENERIC_NOUNS) | set(TEXTURE_WORDS)
                | set(SIZE_WORDS) | set(COLOR_WORDS))
PREFIXES = (("a", "photo", "of"), ("an", "image", "of"), ("a", "picture", "of"), ("there", "is"), ("there", "are"))
JOINERS = ((",", "and"), ("together", "with"), ("and",), (",",), ("with",))

SPATIAL_RELATIONS = ("left of", "right of", "above", "below")
NONSPATIAL_RELATIONS = ("bigger than", "smaller than", "same color as", "touching")
RELATIONS = SPATIAL_RELATIONS + NONSPATIAL_RELATIONS
# Surface forms of each relation, longest first when matched. ID (CompBench-style) prompts use "on the left of" and
# "on the top of"; OOD (GenEval-style) prompts use "left of" and "above": the same facts in other words.
RELATION_PHRASES = {
    ("on", "the", "left", "of"): "left of", ("to", "the", "left", "of"): "left of", ("left", "of"): "left of",
    ("on", "the", "right", "of"): "right of", ("to", "the", "right", "of"): "right of", ("right", "of"): "right of",
    ("on", "the", "top", "of"): "above", ("on", "top", "of"): "above", ("above",): "above",
    ("on", "the", "bottom", "of"): "below", ("below",): "below", ("under",): "below",
    ("is", "bigger", "than"): "bigger than", ("bigger", "than"): "bigger than",
    ("is", "larger", "than"): "bigger than", ("larger", "than"): "bigger than",
    ("is", "smaller", "than"): "smaller than", ("smaller", "than"): "smaller than",
    ("is", "the", "same", "color", "as"): "same color as", ("has", "the", "same", "color", "as"): "same color as",
    ("of", "the", "same", "color", "as"): "same color as",
    ("is", "touching"): "touching", ("touching",): "touching",
}


def vocabulary() -> tuple[str, ...]:
    """Every word (and punctuation token) a ShapeWorld prompt may use, sorted."""
    words = set(SHAPE_NOUNS) | set(SHAPE_PLURALS) | set(SHAPE_ADJECTIVES) | set(GENERIC_NOUNS) | set(TEXTURE_WORDS)
    words |= set(SIZE_WORDS) | set(COLOR_WORDS) | set(DETERMINERS)
    for phrase in (*PREFIXES, *JOINERS, *RELATION_PHRASES):
        words |= set(phrase)
    words |= {"."}
    return tuple(sorted(words))


class PromptError(ValueError):
    """A prompt outside ShapeWorld's language: the message names the offending word and what was expected."""


@dataclass(frozen=True)
class Entity:
    """A noun phrase: the attributes it names (None = unnamed) and how many objects it asks for."""

    shape: str | None = None
    color: str | None = None
    texture: str | None = None
    size: str | None = None
    count: int = 1
    exact: bool = False  # numerals ask for exactly `count`; "a" asks for at least one

    def facts(self) -> dict[str, str]:
        """The attributes this phrase names, e.g. {'shape': 'circle', 'color': 'red'}."""
        return {k: v for k, v in (("shape", self.shape), ("color", self.color), ("texture", self.texture),
                                  ("size", self.size)) if v is not None}

    def matches(self, obj) -> bool:
        return all(getattr(obj, k) == v for k, v in self.facts().items())

    def credit(self, obj) -> float:
        """Fraction of the named facts that `obj` satisfies (partial credit, like a VQA model's P(yes))."""
        facts = self.facts()
        if not facts:
            return 1.0
        return sum(getattr(obj, k) == v for k, v in facts.items()) / len(facts)


@dataclass(frozen=True)
class Relation:
    kind: str  # one of RELATIONS
    subject: int  # entity indices
    object: int


@dataclass(frozen=True)
class PromptSpec:
    entities: tuple[Entity, ...]
    relations: tuple[Relation, ...] = ()

    def to_meta(self) -> dict:
        return {"objects": [asdict(e) for e in self.entities], "relations": [asdict(r) for r in self.relations]}

    @classmethod
    def from_meta(cls, meta: dict) -> "PromptSpec":
        return cls(tuple(Entity(**e) for e in meta["objects"]), tuple(Relation(**r) for r in meta["relations"]))


@dataclass(frozen=True)
class Prompt:
    """A prompt of a suite: its text, its category (CompBench category or GenEval task) and structured metadata."""

    text: str
    category: str
    meta: dict = field(default_factory=dict, compare=False, hash=False)
    suite: str = ""

    @property
    def spec(self) -> PromptSpec:
        return PromptSpec.from_meta(self.meta)


TOKEN_RE = re.compile(r"[a-z]+(?:-[a-z]+)*|[,.]|\S")


def tokenize(text: str) -> list[str]:
    """Lower-cased words and punctuation; characters outside the language come out as their own tokens."""
    return TOKEN_RE.findall(text.lower())


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` quoted for an error message: its first ``limit`` characters, with "..." when it goes on."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _vocab_error(word: str, position: int, expected: str) -> PromptError:
    vocab = ", ".join(w for w in vocabulary() if w not in {",", "."})
    return PromptError(f"unknown word {excerpt(word)} at position {position} (expected {expected}); "
                       f"ShapeWorld's vocabulary is: {vocab}")


class _Reader:
    def __init__(self, text: str):
        if not isinstance(text, str):
            raise PromptError(f"a prompt must be a string, got {type(text).__name__}")
        if len(text) > MAX_PROMPT_CHARS:
            raise PromptError(f"prompt {excerpt(text)} is {len(text)} characters long; ShapeWorld's prompts are at "
                              f"most {MAX_PROMPT_CHARS} (MAX_PROMPT_CHARS)")
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        if not self.tokens:
            raise PromptError("empty prompt: a prompt names at least one object, e.g. 'a red circle'")
        known = set(vocabulary())
        for i, tok in enumerate(self.tokens):
            if tok not in known:
                raise _vocab_error(tok, i, "a word of ShapeWorld's vocabulary")

    def peek(self, n: int = 0) -> str | None:
        return self.tokens[self.pos + n] if self.pos + n < len(self.tokens) else None

    def take(self, phrases) -> tuple | None:
        """Consume the longest of `phrases` (tuples of tokens) that starts here."""
        for phrase in sorted(phrases, key=len, reverse=True):
            if tuple(self.tokens[self.pos:self.pos + len(phrase)]) == phrase:
                self.pos += len(phrase)
                return phrase
        return None

    def fail(self, expected: str) -> PromptError:
        got = self.peek()
        where = f"word {self.pos} ({excerpt(got)})" if got is not None else "the end of the prompt"
        return PromptError(f"malformed prompt {excerpt(self.text)}: at {where} expected {expected}")


def _phrase(reader: _Reader) -> Entity:
    det = reader.peek()
    if det not in DETERMINERS:
        raise reader.fail("a determiner (a, an, one, two, three, four) opening a noun phrase")
    reader.pos += 1
    count, exact = DETERMINERS[det]
    attrs: dict[str, str] = {}

    def put(kind: str, value: str, word: str):
        if kind in attrs and attrs[kind] != value:
            raise PromptError(f"malformed prompt {excerpt(reader.text)}: the phrase names two {kind}s "
                              f"({attrs[kind]!r} and {value!r} from {word!r})")
        attrs[kind] = value

    while True:
        word = reader.peek()
        if word is None:
            raise reader.fail("a noun (a shape such as circle, or object) closing the noun phrase")
        nxt = reader.peek(1)
        # A word that is both a shape adjective and a shape noun ("square") is an adjective when the phrase goes on.
        is_noun = word in SHAPE_NOUNS or word in SHAPE_PLURALS or word in GENERIC_NOUNS
        phrase_goes_on = nxt in PHRASE_WORDS
        if word in SHAPE_ADJECTIVES and (not is_noun or phrase_goes_on):
            put("shape", SHAPE_ADJECTIVES[word], word)
        elif word in COLOR_WORDS:
            put("color", COLOR_WORDS[word], word)
        elif word in TEXTURE_WORDS:
            put("texture", TEXTURE_WORDS[word], word)
        elif word in SIZE_WORDS:
            put("size", SIZE_WORDS[word], word)
        elif is_noun:
            plural = word in SHAPE_PLURALS or GENERIC_NOUNS.get(word) == 2
            if word in SHAPE_NOUNS:
                put("shape", SHAPE_NOUNS[word], word)
            elif word in SHAPE_PLURALS:
                put("shape", SHAPE_PLURALS[word], word)
            reader.pos += 1
            if plural != (count > 1):
                raise PromptError(f"malformed prompt {excerpt(reader.text)}: {det!r} does not agree with {word!r} "
                                  f"({'a plural noun needs two, three or four' if plural else 'two, three or four need a plural noun'})")
            return Entity(count=count, exact=exact, **attrs)
        else:
            raise reader.fail("an adjective (colour, texture, size, shape) or a noun")
        reader.pos += 1


def parse_prompt(text: str) -> PromptSpec:
    """The meaning of a prompt. Unknown words and malformed sentences raise `PromptError` naming the problem."""
    reader = _Reader(text)
    reader.take(PREFIXES)
    entities: list[Entity] = []
    relations: list[Relation] = []
    while True:
        entities.append(_phrase(reader))
        rel = reader.take(RELATION_PHRASES)
        if rel is not None:
            kind = RELATION_PHRASES[rel]
            subject = len(entities) - 1
            entities.append(_phrase(reader))
            for idx in (subject, subject + 1):
                if entities[idx].count != 1:
                    raise PromptError(f"malformed prompt {excerpt(text)}: the relation {' '.join(rel)!r} joins single "
                                      f"objects (a, an, one), not a group of {entities[idx].count}")
            relations.append(Relation(kind, subject, subject + 1))
        if reader.peek() is None or (reader.peek() == "." and reader.peek(1) is None):
            break
        if reader.take(JOINERS) is None:
            raise reader.fail("'and', ',', 'with', a relation (e.g. 'on the left of') or the end of the prompt")
    if sum(e.count for e in entities) > 16:
        raise PromptError(f"prompt {excerpt(text)} asks for more than 16 objects, more than the 8x8 grid can hold")
    return PromptSpec(tuple(entities), tuple(relations))


# -- writing phrases (used by the suites and by pretraining captions) --------------------------------------------

def phrase_text(entity: Entity, *, shape_as_adjective: bool = False, generic_noun: str = "object",
                order: tuple[str, ...] = ("size", "texture", "color")) -> str:
    """The noun phrase for an entity. The shape is the noun ("a red circle"), or with `shape_as_adjective` an adjective
    on a generic noun ("a round red object"), in CompBench's shape-attribute style."""
    words = [entity.size if k == "size" else entity.texture if k == "texture" else entity.color for k in order]
    words = [w for w in words if w is not None]
    plural = entity.count > 1
    if entity.shape is None or shape_as_adjective:
        if entity.shape is not None:
            words.append(next(a for a, s in SHAPE_ADJECTIVES.items() if s == entity.shape))
        noun = generic_noun + ("s" if plural else "")
    else:
        noun = next(p for p, s in SHAPE_PLURALS.items() if s == entity.shape) if plural else entity.shape
    words.append(noun)
    if entity.exact or plural:
        det = NUMBER_WORDS[entity.count]
    else:
        det = "an" if words[0][0] in "aeiou" else "a"
    return " ".join([det, *words])
