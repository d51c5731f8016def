#include "process.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

/* In the child: connect the streams, enter ROOT if any, and run ARGV. Never returns. */
static _Noreturn void exec_child(const char *root, char *const *argv, int out)
{
	int null = open("/dev/null", O_RDWR);

	dup2(null, 0);
	dup2(out, 1);
	dup2(null, 2);
	if (root) {
		if (chroot(root) != 0 || chdir("/") != 0)
			_exit(126);
		char *const env[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", NULL };
		execve(argv[0], argv, env);
	} else {
		execvp(argv[0], argv);
	}
	_exit(127);
}

char *command_output(const char *root, char *const *argv, int *exit_status, char **error)
{
	int fds[2];

	if (pipe2(fds, O_CLOEXEC) != 0) {
		set_error(error, "cannot create a pipe: %s", strerror(errno));
		return NULL;
	}
	pid_t pid = fork();
	if (pid < 0) {
		set_error(error, "cannot start %s: %s", argv[0], strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return NULL;
	}
	if (pid == 0)
		exec_child(root, argv, fds[1]);
	close(fds[1]);

	struct strbuf out = { 0 };
	char buffer[4096];
	ssize_t n;
	while ((n = read(fds[0], buffer, sizeof(buffer))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		strbuf_add(&out, buffer, (size_t)n);
	}
	close(fds[0]);

	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	*exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	strbuf_addc(&out, '\0');
	return strbuf_detach(&out);
}
