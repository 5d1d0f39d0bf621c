"""μNCA in real Blender: bake Image and OSL node groups, and render the OSL node with Cycles."""


from pathlib import Path

import numpy as np
import pytest

from blender_helpers import enable_osl
from core.imageio import read_image
from core.nca import files


def _model(tmp_path=None):
    """A small μNCA saved into the artist's models folder, where the model browser lists it."""
    from bl_ext.atelier_dev.atelier.addon.preferences import models_dir
    tmp_path = models_dir()
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.3 / 4, (4, 16)).astype(np.float32)
    w[:, :4] -= 0.3 * np.eye(4, dtype=np.float32)
    path = tmp_path / "test.safetensors"
    files.save(path, files.from_float(w, rng.normal(0, 0.05, 4), {"name": "test"}))
    return path


def _scene(bpy, tmp_path):
    """A 1x1 plane (UV 0..1) seen straight on by an orthographic camera, emission material."""
    scene = bpy.context.scene
    bpy.ops.mesh.primitive_plane_add(size=1, location=(0.5, 0.5, 0))
    plane = bpy.context.object
    material = bpy.data.materials.new("Mat")
    plane.data.materials.append(material)
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    camera.data.type, camera.data.ortho_scale = "ORTHO", 1.0
    camera.location = (0.5, 0.5, 1.0)
    scene.collection.objects.link(camera)
    scene.camera = camera
    return scene, plane, material


def _snapshot(material):
    tree = material.node_tree
    return ({n.name: (n.bl_idname, tuple(n.location)) for n in tree.nodes},
            {(l.from_node.name, l.from_socket.identifier, l.to_node.name, l.to_socket.identifier) for l in tree.links})


def test_bake_image_mode_adds_a_group_and_touches_nothing_else(blender, tmp_path):
    bpy = blender
    scene, plane, material = _scene(bpy, tmp_path)
    before_nodes, before_links = _snapshot(material)
    s = scene.atelier_nca
    s.model, s.mode, s.size, s.steps, s.frames = str(_model()), "IMAGE", 32, 12, 3
    assert bpy.ops.atelier.nca_bake() == {"FINISHED"}
    group = bpy.data.node_groups["μNCA · test"]
    assert [i.name for i in group.interface.items_tree if i.in_out == "INPUT"] == ["Vector", "Scale", "Time"]
    assert [i.name for i in group.interface.items_tree if i.in_out == "OUTPUT"] == ["Color"]
    images = [n.image for n in group.nodes if n.bl_idname == "ShaderNodeTexImage"]
    assert len(images) == 3 and all(image.packed_file for image in images)
    after_nodes, after_links = _snapshot(material)
    assert {k: after_nodes[k] for k in before_nodes} == before_nodes and before_links <= after_links
    assert any(n.bl_idname == "ShaderNodeGroup" and n.node_tree == group for n in material.node_tree.nodes)
    Path(s.model).unlink()  # the model is gone: an error, nothing new
    with pytest.raises(RuntimeError, match="choose a μNCA texture model"):
        bpy.ops.atelier.nca_bake()
    assert len([g for g in bpy.data.node_groups if g.name.startswith("μNCA")]) == 1


def test_osl_node_renders_the_baked_texture_in_cycles(blender, tmp_path):
    bpy = blender
    enable_osl()
    scene, plane, material = _scene(bpy, tmp_path)
    s = scene.atelier_nca
    s.model, s.mode, s.size, s.steps = str(_model()), "OSL", 32, 12
    assert bpy.ops.atelier.nca_bake() == {"FINISHED"}
    tree = material.node_tree
    group_node = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeGroup")
    emission = tree.nodes.new("ShaderNodeEmission")
    tree.links.new(group_node.outputs["Color"], emission.inputs["Color"])
    tree.links.new(emission.outputs[0], tree.nodes["Material Output"].inputs["Surface"])
    scene.render.engine = "CYCLES"
    scene.cycles.device, scene.cycles.shading_system, scene.cycles.samples = "CPU", True, 1
    scene.cycles.filter_width, scene.cycles.use_denoising = 0.01, False  # the denoiser would blur cells
    scene.render.resolution_x = scene.render.resolution_y = 32
    scene.view_settings.view_transform = "Standard"  # saved EXRs follow the view transform (AgX by default)
    scene.render.image_settings.file_format = "OPEN_EXR"  # float output: no 8-bit rounding, no dither
    scene.render.image_settings.color_depth = "32"
    scene.render.filepath = str(tmp_path / "osl.exr")
    bpy.ops.render.render(write_still=True)
    rendered = read_image(tmp_path / "osl.exr", channels=3)
    # the same texture baked by the numpy runtime (what Image mode packs)
    from core.nca.render import run_states
    from core.nca.runtime import to_rgb
    baked = to_rgb(run_states(files.load(s.model), 32, 12, quantized=True)[0])
    expected = np.where(baked <= 0.04045, baked / 12.92, ((baked + 0.055) / 1.055) ** 2.4)  # sRGB image, linearised
    assert np.abs(rendered - expected).max() <= 1e-3



def test_training_shows_the_texture_growing_and_says_in_the_style_of(blender, tmp_path):
    """An exemplar with no repeating structure (a sky above, ground below, a face) still trains; the
    panel says before and after that the result is a texture in the style of the image, and the
    texture's previews arrive in the panel's preview icon while it trains; the panel's structure and
    colour options reach the training loss."""
    bpy = blender
    from bl_ext.atelier_dev.atelier.addon import nca as addon_nca
    from core.imageio import write_image
    y, x = np.mgrid[0:96, 0:96] / 96
    portrait = np.stack([y, 0.3 + 0 * x, 1 - y], -1)
    portrait[30:70, 35:60] = (0.9, 0.7, 0.6)
    s = bpy.context.scene.atelier_nca
    s.exemplar_source, s.file = "FILE", str(write_image(tmp_path / "portrait.png", portrait))
    assert "in the style of the image" in s.exemplar_note  # shown as soon as the file is chosen
    s.params, s.minutes = "68", 0.05
    s.pyramid, s.palette_weight, s.structure_weight, s.structure_from = "5", 10.0, 10.0, 0.5
    assert bpy.ops.atelier.nca_train() == {"FINISHED"}
    assert Path(s.model).is_file()
    from core.nca import files
    loss = files.load(s.model).meta["hyperparameters"]["loss"]  # the panel's structure and colour terms reach training
    assert "pixel colours" in loss and "autocorrelation" in loss and "from 0.5 of the budget" in loss
    assert "in the style of the image" in s.last_message and "in the style of the image" in s.exemplar_note
    assert s.previews_shown >= 1
    preview = addon_nca.preview_icon()
    assert tuple(preview.image_size) == (128, 128)  # the training grid
    pixels = np.array(preview.image_pixels_float)
    assert pixels.size == 128 * 128 * 4 and np.ptp(pixels.reshape(-1, 4)[:, :3]) > 0
    s.file = str(Path(__file__).resolve().parents[1] / "core/assets/nca/exemplars/spots.png")
    assert s.exemplar_note == ""  # a pattern that tiles: no note
