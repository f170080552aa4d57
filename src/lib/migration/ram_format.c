/*
 * The RAM format of a job, chosen once from the mapped-ram capability,
 * and the channel counts the formats share (see ram_format.h).
 */
#include "migration/ram_format.h"

const struct mig_ram_save_ops *mig_ram_save_format(const struct mr_caps *c)
{
    return c->on[MR_CAP_MAPPED_RAM] ? &mig_ram_save_mapped
                                    : &mig_ram_save_legacy;
}

const struct mig_ram_load_ops *mig_ram_load_format(const struct mr_caps *c)
{
    return c->on[MR_CAP_MAPPED_RAM] ? &mig_ram_load_mapped
                                    : &mig_ram_load_legacy;
}

unsigned mig_ram_no_channels(const struct mr_caps *c, const struct mr_params *p)
{
    (void)c;
    (void)p;
    return 0;
}

unsigned mig_ram_multifd_channels(const struct mr_caps *c,
                                  const struct mr_params *p)
{
    return c->on[MR_CAP_MULTIFD] ? p->multifd_channels : 0;
}
