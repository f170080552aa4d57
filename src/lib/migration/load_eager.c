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

const struct mig_load_mode_ops mig_load_eager = {
    .name = "eager",
    .ram = eager_ram,
};

const struct mig_load_mode_ops *mig_load_mode_for(const struct mr_caps *c)
{
    (void)c;
    return &mig_load_eager;
}
