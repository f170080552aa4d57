/*
 * mapram: the operator's tool.  A table of subcommands, one file each
 * (cmd_<name>.c); every command returns the process exit status.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct cli_command commands[] = {
    { "inspect", cmd_inspect, "show what a save file contains" },
    { "extract", cmd_extract, "write RAM blocks of a save file as raw images" },
    { "verify", cmd_verify, "check a save file's integrity (checksums, layout)" },
    { "seal", cmd_seal, "add per-extent checksums to a save file without them" },
    { "version", cmd_version, "print the version" },
    { "save", cmd_save, "save a VM's memory to a file over QMP" },
    { "restore", cmd_restore, "load a save file into a VM over QMP" },
    { NULL, NULL, NULL },
};

static void usage(FILE *out)
{
    fprintf(out, "usage: mapram <command> [options]\n\ncommands:\n");
    for (const struct cli_command *c = commands; c->name; c++)
        fprintf(out, "  %-10s %s\n", c->name, c->summary);
    fprintf(out, "\n'mapram <command> --help' describes a command.\n");
}

int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("mapram %s\n", MAPRAM_VERSION);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version"))
        return cmd_version(argc - 1, argv + 1);
    for (const struct cli_command *c = commands; c->name; c++) {
        if (!strcmp(argv[1], c->name))
            return c->run(argc - 1, argv + 1);
    }
    fprintf(stderr, "mapram: unknown command '%s' (try 'mapram --help')\n",
            argv[1]);
    return 2;
}
