/* RunState names and the device-state array helper (include/mapram/vm.h). */
#include <stdlib.h>

#include "mapram/vm.h"

static const char *const runstate_names[MR_RUN__MAX] = {
    [MR_RUN_DEBUG] = "debug",
    [MR_RUN_INMIGRATE] = "inmigrate",
    [MR_RUN_INTERNAL_ERROR] = "internal-error",
    [MR_RUN_IO_ERROR] = "io-error",
    [MR_RUN_PAUSED] = "paused",
    [MR_RUN_POSTMIGRATE] = "postmigrate",
    [MR_RUN_PRELAUNCH] = "prelaunch",
    [MR_RUN_FINISH_MIGRATE] = "finish-migrate",
    [MR_RUN_RESTORE_VM] = "restore-vm",
    [MR_RUN_RUNNING] = "running",
    [MR_RUN_SAVE_VM] = "save-vm",
    [MR_RUN_SHUTDOWN] = "shutdown",
    [MR_RUN_SUSPENDED] = "suspended",
    [MR_RUN_WATCHDOG] = "watchdog",
    [MR_RUN_GUEST_PANICKED] = "guest-panicked",
    [MR_RUN_COLO] = "colo",
};

const char *mr_runstate_name(enum mr_runstate state)
{
    if ((unsigned)state >= MR_RUN__MAX)
        return "unknown";
    return runstate_names[state];
}

bool mr_runstate_is_live(enum mr_runstate state)
{
    /* QEMU's runstate_is_live(): the guest would be executing if it
     * were not for an outside stop. */
    return state == MR_RUN_RUNNING || state == MR_RUN_SUSPENDED;
}

void mr_device_state_free_array(struct mr_device_state *states, size_t count)
{
    if (!states)
        return;
    for (size_t i = 0; i < count; i++) {
        free(states[i].idstr);
        free(states[i].data);
        json_decref(states[i].vmdesc);
    }
    free(states);
}
