"""μNCA demo: shipped presets baked onto objects (Image and OSL modes) and rendered with Cycles."""

import math
from pathlib import Path


PRESETS = ("stripes", "spots", "ripples", "brick")
PRESET_FOLDER = Path(__file__).resolve().parents[1] / "core" / "assets" / "nca" / "presets"


def _object(bpy, scene, name, location, make):
    mesh = make(bpy)
    obj = bpy.data.objects.new(name, mesh)
    obj.location = location
    scene.collection.objects.link(obj)
    material = bpy.data.materials.new(f"{name} material")
    obj.data.materials.append(material)
    return obj, material


def _sphere(bpy):
    import bmesh
    mesh, bm = bpy.data.meshes.new("sphere"), bmesh.new()
    bm.loops.layers.uv.new("UVMap")  # calc_uvs fills an existing UV layer
    bmesh.ops.create_uvsphere(bm, u_segments=48, v_segments=24, radius=0.8, calc_uvs=True)
    bm.to_mesh(mesh)
    bm.free()
    for polygon in mesh.polygons:
        polygon.use_smooth = True
    return mesh


def _cube(bpy):
    import bmesh
    mesh, bm = bpy.data.meshes.new("cube"), bmesh.new()
    bm.loops.layers.uv.new("UVMap")
    bmesh.ops.create_cube(bm, size=1.3, calc_uvs=True)
    bm.to_mesh(mesh)
    bm.free()
    return mesh


def run(bpy, out_dir):
    scene = bpy.data.scenes.new("μNCA textures")
    scene.render.engine = "CYCLES"
    scene.cycles.device, scene.cycles.shading_system, scene.cycles.samples = "CPU", True, 16
    scene.render.resolution_x, scene.render.resolution_y = 960, 300
    scene.view_settings.view_transform = "Standard"
    world = bpy.data.worlds.new("μNCA world")
    world.color = (0.6, 0.6, 0.65)
    scene.world = world
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    camera.location, camera.rotation_euler = (0, -10, 0.9), (math.radians(90), 0, 0)
    camera.data.lens = 40
    scene.collection.objects.link(camera)
    scene.camera = camera
    light = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    light.data.energy, light.rotation_euler = 3.0, (math.radians(40), math.radians(20), 0)
    scene.collection.objects.link(light)

    baked = []
    with bpy.context.temp_override(scene=scene, view_layer=scene.view_layers[0]):
        s = scene.atelier_nca
        for i, preset in enumerate(PRESETS):
            make = _sphere if i % 2 == 0 else _cube
            obj, material = _object(bpy, scene, preset, (-3.3 + 2.2 * i, 0, 0.9), make)
            mode = "OSL" if preset == "ripples" else "IMAGE"
            s.model, s.mode = str(PRESET_FOLDER / f"{preset}.safetensors"), mode
            s.size, s.steps = (96 if mode == "OSL" else 256), 1000
            bpy.context.view_layer.objects.active = obj
            with bpy.context.temp_override(object=obj, active_object=obj):
                result = bpy.ops.atelier.nca_bake()
            if result != {"FINISHED"}:
                raise RuntimeError(f"μNCA bake of {preset} failed")
            # the artist's step: plug the texture into the (untouched) Principled BSDF
            tree = material.node_tree
            group = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeGroup")
            group.inputs["Scale"].default_value = 2.0
            tree.links.new(group.outputs["Color"], tree.nodes["Principled BSDF"].inputs["Base Color"])
            baked.append({"preset": preset, "mode": mode, "group": group.node_tree.name})
        scene.render.filepath = str(out_dir / "nca_presets.png")
        bpy.ops.render.render(write_still=True)
    return {"images": [out_dir / "nca_presets.png"], "baked": baked}
