"""A scene for grease-pencil demos: white paper, an orthographic camera looking at the XZ plane."""

import math


def paper_scene(bpy, name, width, height, ortho_scale, frame_end):
    """A NEW EEVEE scene named ``name``, shown in the window (grease-pencil frames follow the window's scene)."""
    scene = bpy.data.scenes.new(name)
    scene.render.engine = "BLENDER_EEVEE"
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.film_transparent = False
    scene.view_settings.view_transform = "Standard"
    world = bpy.data.worlds.new(f"{name} paper")
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (1, 1, 1, 1)
    scene.world = world
    camera = bpy.data.objects.new(f"{name} camera", bpy.data.cameras.new(f"{name} camera"))
    camera.data.type, camera.data.ortho_scale = "ORTHO", ortho_scale
    camera.location, camera.rotation_euler = (0, -10, 0), (math.pi / 2, 0, 0)
    scene.collection.objects.link(camera)
    scene.camera = camera
    scene.frame_start, scene.frame_end = 1, frame_end
    if bpy.context.window is not None:
        bpy.context.window.scene = scene
    return scene
