/*
 * The RAM format of a job, chosen once from the mapped-ram capability,
 * and the channel counts the formats share (see ram_format.h).
 */
#include "migration/ram_format.h"
#include "migration/save_job.h"

/* multifd without mapped-ram passed the transport check: a socket. */
const struct mig_ram_save_ops *mig_ram_save_format(const struct mr_caps *c)
{
    if (c->on[MR_CAP_MAPPED_RAM])
        return &mig_ram_save_mapped;
    return c->on[MR_CAP_MULTIFD] ? &mig_ram_save_sock : &mig_ram_save_legacy;
}

const struct mig_ram_load_ops *mig_ram_load_format(const struct mr_caps *c)
{
    if (c->on[MR_CAP_MAPPED_RAM])
        return &mig_ram_load_mapped;
    return c->on[MR_CAP_MULTIFD] ? &mig_ram_load_sock : &mig_ram_load_legacy;
}

static int write_through(void *opaque, const void *buf, size_t len,
                         uint64_t off, struct mr_error *err)
{
    struct save_job *j = opaque;

    return j->ch.ops->write_main(&j->ch, buf, len, off, err);
}

struct mr_stream_sink mig_ram_plain_sink(struct save_job *j)
{
    return (struct mr_stream_sink){ write_through, j };
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
