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


def sidebar_panels(feature, label, draw, spaces, subpanels=()):
    """The same sidebar panel (tab "Atelier", title ``label``) in each editor of ``spaces``
    ({idname suffix: space type}), drawn by ``draw(layout, context)``; named
    ATELIER_PT_<feature>_<suffix>.  ``subpanels`` are ``(label, draw)`` pairs shown closed below it,
    laid out like Blender's own (property split).  Returns every panel class, parents first."""
    def panel(idname, title, function, **extra):
        def draw_panel(self, context):
            self.layout.use_property_split, self.layout.use_property_decorate = True, False
            function(self.layout, context)
        return type(idname, (bpy.types.Panel,), {"bl_idname": idname, "bl_space_type": space, "bl_region_type": "UI",
                                                 "bl_category": "Atelier", "bl_label": title, "draw": draw_panel,
                                                 **extra})

    panels = []
    for suffix, space in spaces.items():
        parent = f"ATELIER_PT_{feature}_{suffix}"
        panels.append(panel(parent, label, draw))
        for index, (title, function) in enumerate(subpanels):
            panels.append(panel(f"{parent}_{index}", title, function, bl_parent_id=parent,
                                bl_options={"DEFAULT_CLOSED"}))
    return tuple(panels)
