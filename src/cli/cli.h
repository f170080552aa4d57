/* The mapram tool's subcommands.  Each returns the exit status:
 * 0 success, 1 failure (a message was printed), 2 usage error. */
#ifndef MAPRAM_CLI_H
#define MAPRAM_CLI_H

struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    const char *summary;
};

int cmd_version(int argc, char **argv);
int cmd_save(int argc, char **argv);
int cmd_restore(int argc, char **argv);

#endif
