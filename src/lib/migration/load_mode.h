/*
 * The load-mode seam: when guest RAM is brought in.  Eager (load_eager.c)
 * reads every page before the guest runs; the lazy, userfaultfd-driven mode
 * (load_lazy.c, docs/lazy-load.md) is its peer behind the same table.
 */
#ifndef MAPRAM_MIGRATION_LOAD_MODE_H
#define MAPRAM_MIGRATION_LOAD_MODE_H

struct load_job;
struct mr_caps;

struct mig_load_mode_ops {
    const char *name;
    /* After the main stream was parsed and checked, before the devices
     * are loaded and the guest may run. */
    int (*ram)(struct load_job *j);
    /* Devices loaded and the run state set: eager completes, lazy moves
     * to postcopy-active and fills the rest behind the running guest. */
    void (*resumed)(struct load_job *j);
};

extern const struct mig_load_mode_ops mig_load_eager, mig_load_lazy;

/* The load mode of a job, chosen once. */
const struct mig_load_mode_ops *mig_load_mode_for(const struct mr_caps *c);

#endif
