"""ShapeWorld pixels: rendering, the designed codebook, and parsing images back into scenes."""
import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

import cotlab.world as w

FRESH_SEED = 20261124  # not used while developing the parser


def test_codebook_patches_are_distinct_so_encoding_is_exact():
    patches = w.codebook().reshape(w.CODEBOOK_SIZE, -1).astype(np.float64)
    assert patches.shape[0] == 1 + 5 * 10 * 3 * 5
    dist = np.sqrt(((patches[:, None] - patches[None]) ** 2).mean(-1))
    np.fill_diagonal(dist, np.inf)
    # The closest pair of codes is still far above float rounding, and matching tolerance is far below none.
    assert dist.min() > 5.0
    assert w.describe_code(0) == "background"
    assert (w.codebook()[0] == w.BACKGROUND).all()


def test_scene_model_has_the_required_attribute_ranges():
    assert len(w.SHAPES) >= 5 and len(w.COLOR_NAMES) >= 8 and len(w.TEXTURES) >= 3
    assert set(w.SIZES) == {"small", "large"}
    obj = w.Obj("circle", "red", "striped", "large", 6, 6)
    assert obj.cells == {(6, 6), (6, 7), (7, 6), (7, 7)}
    with pytest.raises(ValueError, match="leaves the 8x8 grid"):
        w.Obj("circle", "red", "striped", "large", 7, 0)
    with pytest.raises(ValueError, match="unknown color 'crimson'"):
        w.Obj("circle", "crimson", "solid", "small", 0, 0)
    with pytest.raises(ValueError, match="overlap"):
        w.Scene((w.Obj("circle", "red", "solid", "large", 0, 0), w.Obj("square", "blue", "solid", "small", 1, 1)))


def test_colours_stay_distinct_under_blur():
    """Every object's blurred mean colour is nearest to its own colour's blurred mean, whatever the textures."""
    means = {}
    for color in w.COLOR_NAMES:
        for texture in w.TEXTURES:
            img = w.render(w.Scene((w.Obj("square", color, texture, "large", 3, 3),)))
            arr = np.asarray(img.filter(ImageFilter.GaussianBlur(2)), dtype=np.float64)
            means[color, texture] = arr[26:38, 26:38].reshape(-1, 3).mean(0)
    for (color, texture), mean in means.items():
        dists = {c: np.linalg.norm(mean - means[c, "solid"]) for c in w.COLOR_NAMES}
        assert min(dists, key=dists.get) == color, (color, texture, sorted(dists.items(), key=lambda t: t[1])[:3])


def test_render_is_deterministic_and_the_token_round_trip_is_pixel_exact():
    rng = np.random.default_rng(FRESH_SEED)
    tok = w.PatchTokenizer()
    scenes = [w.random_scene(rng) for _ in range(200)]
    images = [w.render(s) for s in scenes]
    assert all(im.size == (64, 64) and im.mode == "RGB" for im in images)
    assert np.array_equal(w.render_array(scenes[0]), w.render_array(scenes[0]))
    codes = tok.encode(scenes)
    assert codes.shape == (200, 64) and codes.dtype == torch.long
    assert torch.equal(tok.encode(images), codes)  # encoding pixels recovers the scene's codes
    for img, back in zip(images, tok.decode(codes)):
        assert np.array_equal(np.asarray(img), np.asarray(back))
    assert tok.codebook_size == w.CODEBOOK_SIZE and tok.num_tokens == 64


def test_parse_recovers_fresh_random_scenes():
    rng = np.random.default_rng(FRESH_SEED + 1)
    scenes = [w.random_scene(rng) for _ in range(2000)]
    recovered = sum(set(w.parse(w.render(s)).objects) == set(s.objects) for s in scenes)
    assert recovered / len(scenes) >= 0.995
    # Scenes up to the grid's capacity parse exactly too.
    crowded = w.random_scene(rng, num_objects=16)
    assert set(w.parse(w.render(crowded)).objects) == set(crowded.objects)


def test_random_codes_parse_only_objects_that_are_drawn_whole():
    rng = np.random.default_rng(FRESH_SEED + 2)
    tok = w.PatchTokenizer()
    codes = torch.as_tensor(rng.integers(0, w.CODEBOOK_SIZE, (50, 64)))
    for img in tok.decode(codes):
        reading = w.read_patches(img)
        # Every parsed object, re-rendered alone, reproduces the image's pixels on its patches.
        arr = np.asarray(img)
        for obj in reading.scene.objects:
            alone = w.render_array(w.Scene((obj,)))
            y, x, n = obj.row * 8, obj.col * 8, obj.span * 8
            assert np.array_equal(arr[y:y + n, x:x + n], alone[y:y + n, x:x + n])
        assert not reading.unrecognised  # decoded codes are always codebook patches


def test_half_objects_are_fragments_not_objects():
    rng = np.random.default_rng(FRESH_SEED + 3)
    checked = 0
    while checked < 100:
        scene = w.random_scene(rng)
        large = [o for o in scene.objects if o.size == "large"]
        if not large:
            continue
        obj = large[0]
        arr = w.render_array(scene).copy()
        arr[obj.row * 8:(obj.row + 1) * 8, obj.col * 8:(obj.col + 2) * 8] = w.BACKGROUND  # erase the top half
        reading = w.read_patches(arr)
        assert obj not in reading.scene.objects
        assert set(reading.scene.objects) == set(scene.objects) - {obj}
        assert len(reading.fragments) == 2
        checked += 1


@pytest.mark.parametrize("radius,min_exact", [(0.5, 0.99), (0.7, 0.95), (1.0, 0.0), (2.0, 0.0)])
def test_blur_never_puts_objects_where_there_are_none(radius, min_exact):
    """Mild blur parses exactly; heavy blur loses objects and misreads textures, but no object is parsed on
    patches where the scene has none."""
    rng = np.random.default_rng(FRESH_SEED + 4)
    scenes = [w.random_scene(rng) for _ in range(200)]
    parsed = [w.parse(w.render(s).filter(ImageFilter.GaussianBlur(radius))).objects for s in scenes]
    exact = np.mean([set(p) == set(s.objects) for p, s in zip(parsed, scenes)])
    assert exact >= min_exact
    for p, s in zip(parsed, scenes):
        assert all(obj.cells & s.occupied() for obj in p)


def test_noise_blank_and_flat_images_have_no_objects_and_still_score():
    rng = np.random.default_rng(FRESH_SEED + 5)
    images = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(10)]
    images += [Image.new("RGB", (64, 64), c) for c in [w.BACKGROUND, (0, 0, 0), (255, 255, 255), *w.COLORS.values()]]
    prompts = (w.load_suite("compbench", "val") + w.load_suite("geneval"))[:len(images)]
    for img, prompt in zip(images, prompts):
        assert w.parse(img).objects == ()
        s = w.score(prompt, img)
        assert 0.0 <= s.value <= 1.0 and s.correct is False


@pytest.mark.parametrize("bad,message", [
    (Image.new("RGB", (32, 32)), "size 32x32"),
    (Image.new("RGBA", (64, 64)), "mode 'RGBA'"),
    (Image.new("L", (64, 64)), "mode 'L'"),
    (np.zeros((64, 64), dtype=np.uint8), "shape \\(64, 64\\)"),
    (np.zeros((64, 64, 3), dtype=np.float32), "dtype float32"),
])
def test_wrong_image_gets_an_error_saying_what_was_expected(bad, message):
    with pytest.raises(ValueError, match=message) as err:
        w.parse(bad)
    assert "expected a 64x64 RGB image" in str(err.value)
    with pytest.raises(ValueError, match="expected a 64x64 RGB image"):
        w.score("a red circle", bad)
    with pytest.raises(TypeError, match="expected a 64x64 RGB image"):
        w.parse("not an image")


def test_decode_refuses_codes_outside_the_codebook():
    tok = w.PatchTokenizer()
    with pytest.raises(ValueError, match="0..750"):
        tok.decode(torch.full((1, 64), w.CODEBOOK_SIZE))
    with pytest.raises(ValueError, match=r"shape \(N, 64\)"):
        tok.decode(torch.zeros((1, 63), dtype=torch.long))
    with pytest.raises(ValueError, match="at least one"):
        tok.encode([])
