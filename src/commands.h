/* The obake commands. Each takes argv with argv[0] the command name and returns the exit status. */
#ifndef OBAKE_COMMANDS_H
#define OBAKE_COMMANDS_H

/* Exit statuses, as `obake --help` documents them. */
enum exit_status {
	EXIT_OK = 0,
	EXIT_FINDINGS = 1,      /* check: a file failed to parse; solve: no solution; build: a target did not build */
	EXIT_USAGE = 2,         /* invalid command line, or a repository that cannot be read */
	EXIT_INTERRUPTED = 130, /* build stopped by SIGINT or SIGTERM, as shells report a Ctrl-C */
};

int command_check(int argc, char **argv);
int command_list(int argc, char **argv);
int command_solve(int argc, char **argv);
int command_dockerfile(int argc, char **argv);
int command_build(int argc, char **argv);
int command_base(int argc, char **argv);
int command_fetch(int argc, char **argv);
int command_prune(int argc, char **argv);

#endif
