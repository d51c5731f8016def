/*
 * Assembling a layer's root file system without copying: the base and the dependency layers are
 * stacked as overlayfs lower layers, with a fresh upper directory that receives the build's writes.
 *
 * With Linux 6.8 or later, lower layers are added one at a time with the new mount API
 * (fsopen("overlay"), fsconfig(FSCONFIG_SET_STRING, "lowerdir+", path), fsmount, move_mount), so the
 * one-page limit on mount options does not apply. overlayfs itself stops at 500 lower layers. Past
 * that, the deepest layers above the bottom one are first merged into one directory, a copy made
 * once per build. The bottom layer, the base system, is never copied.
 * On older kernels the classic mount(2) is used with short symbolic links to the layers, and the
 * same merging once the option string would pass one page. Setting OBAKE_OVERLAY_LEGACY=1 forces the
 * mount(2) path even where lowerdir+ is accepted, and OBAKE_OVERLAY_MAX_LOWER=N (3 to 499) lowers
 * the 500-layer limit, so that tests reach both paths with small stacks.
 */
#ifndef OBAKE_OVERLAY_H
#define OBAKE_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>

/* Maximum lower layers overlayfs accepts (OVL_MAX_STACK in the kernel). */
#define OVERLAY_MAX_LOWER 500

struct overlay {
	char *merged;  /* mount point of the assembled tree */
	char *upper;   /* where writes land: the new layer's files */
	char *work;    /* overlayfs work directory (same file system as upper) */
	char *scratch; /* directory owning merged, upper, work and any merged lower layers */
	bool mounted;
	bool used_new_api;      /* lowerdir+ was used */
	unsigned merged_lowers; /* lower layers merged by copying because of the limit */
	unsigned max_lower;     /* the limit: OVERLAY_MAX_LOWER, or less with OBAKE_OVERLAY_MAX_LOWER */
};

/*
 * Mount LOWERS[0..COUNT) (LOWERS[0] is the topmost, the last is the base) under a new directory
 * made inside SCRATCH_PARENT. Returns 0, or -1 with a message (naming the failing path and errno)
 * in ERROR, which the caller frees.
 */
int overlay_mount(struct overlay *o, const char *scratch_parent, char *const *lowers, size_t count, char **error);

/*
 * Unmount and remove merged and work; keeps upper (the caller moves it into the store) unless
 * REMOVE_UPPER. The strings stay allocated: the caller removes what remains of scratch and frees them.
 */
int overlay_unmount(struct overlay *o, bool remove_upper, char **error);

/* True if this kernel accepts "lowerdir+" for overlay (probed once). */
bool overlay_has_new_api(void);

#endif
