"""Held-out splits of the builtin stroke data hold no training item (issue 18)."""

import numpy as np
import pytest

from core.sketch import data as S
from core.sketch.data_splits import content_key, disjoint, kanji_base, overlap, stroke3_key


def test_content_key_is_the_same_drawing_at_any_place_and_scale_and_differs_otherwise():
    glyph = [np.array([[0, 0], [4, 8], [8, 0]], float), np.array([[2, 4], [6, 4]], float)]
    moved = [p * 3.5 + [10, -7] for p in glyph]
    assert content_key(glyph) == content_key(moved)
    assert content_key(glyph) != content_key(glyph[:1])                       # a stroke missing
    assert content_key(glyph) != content_key([np.concatenate(glyph)])         # strokes joined
    assert content_key(glyph) != content_key([glyph[0], glyph[1] + [0, 1]])   # a bar moved


def test_disjoint_gives_each_key_to_the_first_split_that_has_it():
    keys = ["a", "b", "a", "c", "c", "d", "b"]
    where = ["train", "test", "test", "test", "test", "valid", "train"]
    chosen = disjoint(keys, where)
    assert chosen == {"train": [0, 6], "valid": [5], "test": [3]}           # a, b: trained on; c once
    assert disjoint(keys, where, unique=False)["test"] == [3, 4]            # variants of one key all kept


def test_kanji_files_are_split_by_base_character(monkeypatch):
    files = S.kanjivg_files()[:3000]        # sorted: a character's variant files lie beside it
    assert any("-" in f.stem for f in files)
    monkeypatch.setattr(S, "kanjivg_files", lambda: files)
    drawing = {}

    def fake_svg(file, samples=8):          # one distinct drawing per file, without parsing 3,000 SVGs
        a, b = divmod(len(drawing), 60)
        drawing[file.stem] = [np.array([[0, 0], [1000, 0], [0, 1000]], float),
                              np.array([[16 * a, 16 * b], [16 * a + 8, 16 * b + 8]], float)]
        return drawing[file.stem]
    monkeypatch.setattr(S, "load_svg", fake_svg)
    splits, _ = S.load_dataset("kanji")
    stem_of = {stroke3_key(S.polylines_to_stroke3(S.simplify_polylines(d, 2.0))): stem for stem, d in drawing.items()}
    bases = {name: {kanji_base(stem_of[stroke3_key(s)]) for s in sketches} for name, sketches in splits.items()}
    assert bases["train"] and bases["test"] and bases["valid"]
    assert not bases["train"] & bases["test"] and not bases["train"] & bases["valid"]
    assert not bases["valid"] & bases["test"]
    variants = sum(len(v) for v in splits.values()) - sum(len(b) for b in bases.values())
    assert variants > 0                                                      # variant files stay, with their base


def test_no_hershey_test_glyph_of_sketch_rnn_equals_a_training_glyph():
    splits, _ = S.load_dataset("hershey")
    assert len(splits["test"]) >= 20 and len(splits["train"]) >= 1000
    for held_out in ("valid", "test"):
        assert overlap(splits["train"], splits[held_out], key=stroke3_key) == []
        keys = [stroke3_key(s) for s in splits[held_out]]
        assert len(set(keys)) == len(keys)
    train = {s.tobytes() for s in splits["train"]}
    assert not any(s.tobytes() in train for s in splits["test"])              # nor byte for byte


@pytest.mark.parametrize("name", ["kanji", "hershey", "digits"])
def test_no_strokenet_test_item_equals_a_training_item(name):
    from core.strokes.data import character_strokes, ink_images, item_keys, split_indices
    train, test = split_indices(name, "train"), split_indices(name, "test")
    keys = item_keys(name)
    assert len(test) >= 40 and not {keys[i] for i in train} & {keys[i] for i in test}
    assert len({keys[i] for i in test}) == len(test)
    if name == "hershey":
        assert len(set(keys)) < len(keys)                                    # the fonts do share glyphs
        assert overlap(character_strokes(name, "train"), character_strokes(name, "test")) == []
    images = ink_images(name, "test")
    assert len(images) == len(test)
    trained = {np.rint(im * 255).astype(np.uint8).tobytes() for im in ink_images(name, "train")}
    assert not any(np.rint(im * 255).astype(np.uint8).tobytes() in trained for im in images)
