"""Registering a feature module's classes and its per-scene settings, the same way everywhere."""

import bpy


def register_classes(classes, **scene_settings):
    """Register ``classes`` in order, then give every scene each ``name=PropertyGroup`` as ``scene.<name>``."""
    for cls in classes:
        bpy.utils.register_class(cls)
    for name, group in scene_settings.items():
        setattr(bpy.types.Scene, name, bpy.props.PointerProperty(type=group))


def unregister_classes(classes, *scene_settings):
    """Undo :func:`register_classes`: remove the scene settings ``scene_settings`` (names), then the classes."""
    for name in scene_settings:
        delattr(bpy.types.Scene, name)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)


def sidebar_panels(feature, label, draw, spaces):
    """The same sidebar panel (tab "Atelier", title ``label``) in each editor of ``spaces``
    ({idname suffix: space type}), drawn by ``draw(layout, context)``; named
    ATELIER_PT_<feature>_<suffix>."""
    def draw_panel(self, context):
        draw(self.layout, context)

    return tuple(type(f"ATELIER_PT_{feature}_{suffix}", (bpy.types.Panel,),
                      {"bl_idname": f"ATELIER_PT_{feature}_{suffix}", "bl_space_type": space,
                       "bl_region_type": "UI", "bl_category": "Atelier", "bl_label": label, "draw": draw_panel})
                 for suffix, space in spaces.items())
