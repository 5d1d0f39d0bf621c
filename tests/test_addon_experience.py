"""The artist's experience in real Blender: reasons on greyed-out buttons, the model browser, work
going where it was asked, and Esc keeping what training made."""

from pathlib import Path

import numpy as np
import pytest

PACKAGE = "bl_ext.atelier_dev.atelier"


def addon(name):
    import importlib
    return importlib.import_module(f"{PACKAGE}.addon.{name}")


def poll_message(operator):
    """The reason Blender gives for a greyed-out operator (None when it can run)."""
    if operator.poll():
        return None
    with pytest.raises(RuntimeError) as error:
        operator()
    return str(error.value)


def test_operators_say_why_they_cannot_run_in_an_empty_scene(blender):
    ops = blender.ops.atelier
    reasons = {name: poll_message(getattr(ops, name)) for name in (
        "nca_bake", "nca_train", "sketch_complete", "sketch_reinterpret", "sketch_morph",
        "strokes_image_to_strokes", "stylize_train", "stylize_run", "stylize_keyframe_remove")}
    assert "object with a material" in reasons["nca_bake"]
    assert "exemplar image" in reasons["nca_train"]
    for name in ("sketch_complete", "sketch_reinterpret", "sketch_morph"):
        assert "grease-pencil drawing" in reasons[name]
    assert "image to redraw" in reasons["strokes_image_to_strokes"]
    assert "folder of rendered frames" in reasons["stylize_train"] and "folder" in reasons["stylize_run"]
    assert "no keyframe" in reasons["stylize_keyframe_remove"]
    assert poll_message(ops.sketch_auto_draw) is None  # a shipped model is always there


def small_nca(path):
    from core.nca import files
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.3 / 4, (4, 16)).astype(np.float32)
    w[:, :4] -= 0.3 * np.eye(4, dtype=np.float32)
    files.save(path, files.from_float(w, rng.normal(0, 0.05, 4), {"name": path.stem}))
    return path


def test_the_model_browser_lists_by_kind_with_thumbnails_and_manages_own_models(blender):
    library = addon("library")
    folder = addon("preferences").models_dir()
    mine = small_nca(folder / "my_texture.safetensors")
    (folder / "notes.safetensors").write_bytes(b"not a model")
    scene = blender.context.scene
    nca_items = [item[0] for item in library.model_items("nca")(scene.atelier_nca, blender.context)]
    sketch_items = [item[0] for item in library.model_items("sketch")(scene.atelier_sketch, blender.context)]
    assert str(mine) in nca_items and "stripes" in " ".join(nca_items)  # presets and the artist's own
    assert str(mine) not in sketch_items and not any("notes" in i for i in nca_items + sketch_items)
    assert any(i.endswith("kanji.safetensors") for i in sketch_items)
    entry = library.library().find(mine)
    library._icon(entry)  # its texture, drawn once (icon ids stay 0 without a window)
    assert str(mine) in library._state["previews"]
    thumbnail = library.library().thumbnail(entry)
    from core.imageio import read_image
    assert read_image(thumbnail).shape[:2] == (96, 96)

    renamed = library.library().rename(mine, "Mossy wall")
    assert renamed.name == "Mossy wall.safetensors" and not mine.exists()
    preset = library.library().entries("nca")[0]
    with pytest.raises(Exception, match="only your own models") as refused:  # the add-on's own AtelierError
        library.library().delete(preset.path)
    assert type(refused.value).__name__ == "AtelierError"
    assert blender.ops.atelier.model_delete(path=str(renamed)) == {"FINISHED"}
    assert not renamed.exists() and preset.path.exists()


def plane_with_material(bpy, name):
    bpy.ops.mesh.primitive_plane_add()
    plane = bpy.context.object
    plane.name = name
    plane.data.materials.append(bpy.data.materials.new(f"{name} material"))
    return plane


def test_bake_goes_to_the_material_chosen_when_it_started(blender, monkeypatch):
    bpy = blender
    first, second = plane_with_material(bpy, "First"), plane_with_material(bpy, "Second")
    bpy.context.view_layer.objects.active = first
    client = addon("worker_client")
    original = client.WorkerJob.wait

    def wait_while_the_artist_selects_something_else(job, on_message=None, timeout=None):
        bpy.context.view_layer.objects.active = second
        return original(job, on_message, timeout)

    monkeypatch.setattr(client.WorkerJob, "wait", wait_while_the_artist_selects_something_else)
    settings = bpy.context.scene.atelier_nca
    settings.size, settings.steps = 32, 20
    assert bpy.ops.atelier.nca_bake() == {"FINISHED"}
    groups = [n for n in first.active_material.node_tree.nodes if n.bl_idname == "ShaderNodeGroup"]
    assert len(groups) == 1
    assert not [n for n in second.active_material.node_tree.nodes if n.bl_idname == "ShaderNodeGroup"]


def test_esc_during_training_keeps_and_offers_the_best_model(blender, tmp_path, monkeypatch):
    bpy = blender
    from core.imageio import write_image
    x = np.arange(64)[None, :, None]
    exemplar = write_image(tmp_path / "stripes.png", np.repeat(0.5 + 0.5 * np.sin(x / 3.0), 64, 0).repeat(3, 2))
    client = addon("worker_client")
    original = client.WorkerJob.wait

    def wait_and_press_esc(job, on_message=None, timeout=None):
        def cancel_after_an_iteration(message):
            if message.get("type") == "progress" and message.get("figures", {}).get("iteration", 0) >= 1:
                job.cancel()
        return original(job, cancel_after_an_iteration, timeout)

    monkeypatch.setattr(client.WorkerJob, "wait", wait_and_press_esc)
    settings = bpy.context.scene.atelier_nca
    settings.exemplar_source, settings.file, settings.minutes = "FILE", str(exemplar), 5.0
    assert bpy.ops.atelier.nca_train() == {"FINISHED"}
    assert settings.last_message.startswith("Stopped; kept the best model so far")
    kept = Path(settings.model)
    assert kept.is_file() and kept.parent == addon("preferences").models_dir()
    assert str(kept) in settings.last_message


def test_sketch_rnn_trains_on_the_artists_own_drawings_and_lists_the_model(blender):
    bpy = blender
    gpencil = addon("gpencil")
    rng = np.random.default_rng(0)
    t = np.linspace(0, 2 * np.pi, 24)
    obj = None
    for frame in range(1, 21):  # 20 drawings of a little house-and-sun style, one per frame
        wobble = rng.normal(0, 0.03, 2)
        house = np.c_[[0, 0, 0.5, 1, 1, 0] + wobble[0], np.zeros(6), [0, 0.6, 1, 0.6, 0, 0] + wobble[1]]
        sun = np.c_[1.5 + 0.2 * np.cos(t), np.zeros(24), 1.2 + 0.2 * np.sin(t)] * (1 + 0.1 * rng.random())
        strokes = [{"points": house, "radius": 0.01}, {"points": sun, "radius": 0.01}]
        if obj is None:
            obj = gpencil.create_drawing(bpy.context, "My drawings", strokes, frame_start=frame)
        else:
            gpencil.add_frame(obj, frame, strokes)
    bpy.context.view_layer.objects.active = obj
    settings = bpy.context.scene.atelier_sketch
    settings.train_from, settings.train_minutes = "FRAMES", 0.05
    assert bpy.ops.atelier.sketch_train() == {"FINISHED"}
    model = Path(settings.model)
    assert model.parent == addon("preferences").models_dir() and model.name.startswith("sketch_My")
    assert model in [entry.path for entry in addon("library").library().entries("sketch")]
    assert bpy.ops.atelier.sketch_auto_draw() == {"FINISHED"}  # the artist's own style draws
    assert bpy.context.active_object.name.startswith("Sketch ")


class RecordingLayout:
    """A stand-in for ``bpy.types.UILayout`` that records what a panel draws: Blender itself only
    prints a warning for a property or operator that does not exist, and draws the rest."""

    CONTAINERS = ("row", "column", "box", "split", "column_flow", "grid_flow")

    def __init__(self, record):
        self.__dict__["record"] = record

    def __setattr__(self, name, value):  # use_property_split, active, enabled, scale_y...
        pass

    def __getattr__(self, name):
        if name in self.CONTAINERS:
            return lambda *args, **kwargs: RecordingLayout(self.record)
        return lambda *args, **kwargs: self.record.append((name, args, kwargs)) or RecordingLayout(self.record)


def test_every_panel_draws_only_properties_and_operators_that_exist(blender):
    """Each panel of the add-on, drawn in a fresh scene, names real properties and operators."""
    bpy = blender
    import importlib
    package = importlib.import_module(f"{PACKAGE}.addon")
    panels = [cls for module in package._modules for cls in getattr(module, "classes", ())
              if issubclass(cls, bpy.types.Panel)]
    assert any(cls.__name__ == "ATELIER_PT_nca_train_options" for cls in panels)
    for cls in panels:
        record = []
        panel = type("Drawn", (), {"layout": RecordingLayout(record), "bl_label": cls.bl_label})()
        cls.draw(panel, bpy.context)
        for kind, args, _ in record:
            if kind in ("prop", "template_ID"):
                data, name = args[:2]
                assert name in data.bl_rna.properties, f"{cls.__name__} draws a missing property {name!r}"
            elif kind == "operator":
                group, name = args[0].split(".")
                assert hasattr(getattr(bpy.ops, group), name), f"{cls.__name__} draws a missing operator {args[0]}"
