/*
 * The eager load mode: every page the stream did not carry inline is read
 * by the job's RAM format before devices load and the guest runs.
 */
#include "migration/load_job.h"
#include "migration/load_mode.h"
#include "migration/ram_format.h"

static int eager_ram(struct load_job *j)
{
    return j->fmt->fetch_all(j);
}

static void eager_resumed(struct load_job *j)
{
    mr_mig_state_cas(&j->mig->in, MR_MIG_ACTIVE, MR_MIG_COMPLETED);
}

const struct mig_load_mode_ops mig_load_eager = {
    .name = "eager",
    .ram = eager_ram,
    .resumed = eager_resumed,
};

/* QEMU's fast snapshot load: postcopy-ram on the incoming side. */
const struct mig_load_mode_ops *mig_load_mode_for(const struct mr_caps *c)
{
    return c->on[MR_CAP_POSTCOPY_RAM] ? &mig_load_lazy : &mig_load_eager;
}
