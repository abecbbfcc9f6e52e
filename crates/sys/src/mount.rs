//! Mount API (fsopen/fsmount/open_tree/move_mount/mount_setattr) and openat2 RESOLVE_IN_ROOT.
