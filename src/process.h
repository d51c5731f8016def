/* Running a command and collecting what it prints. */
#ifndef OBAKE_PROCESS_H
#define OBAKE_PROCESS_H

/*
 * Run ARGV with standard input and error on /dev/null and return its standard output as a new
 * string. With ROOT, the command runs inside ROOT (chroot, which needs root) with a minimal PATH;
 * without it, ARGV[0] is looked up in PATH. No shell is involved, so arguments need no quoting.
 * Sets *EXIT_STATUS to the exit status, 126 when ROOT cannot be entered, 127 when ARGV[0] cannot
 * be run, or -1 when the command was killed. Returns NULL with ERROR set when it cannot start.
 */
char *command_output(const char *root, char *const *argv, int *exit_status, char **error);

#endif
