/*
 * Default channel count from the number of online CPUs (see channels.h):
 * each channel thread checksums and moves its own pages, so more threads
 * than CPUs only compete, and fewer leave a CPU idle while one waits.
 */
#include <unistd.h>

#include "channels.h"

unsigned mgmt_channels_for_cpus(long online_cpus)
{
    if (online_cpus <= 0)
        return MGMT_FALLBACK_CHANNELS;
    if (online_cpus < MGMT_MIN_DEFAULT_CHANNELS)
        return MGMT_MIN_DEFAULT_CHANNELS;
    if (online_cpus > MGMT_MAX_DEFAULT_CHANNELS)
        return MGMT_MAX_DEFAULT_CHANNELS;
    return (unsigned)online_cpus;
}

unsigned mgmt_default_channels(void)
{
    return mgmt_channels_for_cpus(sysconf(_SC_NPROCESSORS_ONLN));
}
