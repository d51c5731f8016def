#include "base.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "depexts.h"
#include "files.h"
#include "process.h"
#include "util.h"

/* Run ARGV and wait; stdout and stderr go to LOG when given. Returns the exit status, or -1. */
static int run_command(char *const *argv, const char *log)
{
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (log) {
			int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
		}
		int null = open("/dev/null", O_RDONLY);
		if (null >= 0)
			dup2(null, 0);
		execvp(argv[0], argv);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The host's Debian release, from /etc/os-release, so the base matches the host by default. */
static char *host_suite(void)
{
	char *text;
	size_t len;

	if (read_file("/etc/os-release", &text, &len) == 0) {
		char *line = strstr(text, "VERSION_CODENAME=");
		if (line) {
			line += strlen("VERSION_CODENAME=");
			char *suite = xstrndup(line, strcspn(line, "\n\""));
			free(text);
			if (*suite)
				return suite;
			free(suite);
		} else {
			free(text);
		}
	}
	return xstrdup("bookworm");
}

/*
 * The host's Debian mirror: the first http(s) URL of an active apt source line ("deb URL ..." or
 * "URIs: URL"), skipping comments and the security archive.
 */
static char *host_mirror(void)
{
	static const char *const files[] = { "/etc/apt/sources.list", "/etc/apt/sources.list.d/debian.sources" };

	for (size_t i = 0; i < ARRAY_LEN(files); i++) {
		char *text;
		size_t len;
		if (read_file(files[i], &text, &len) != 0)
			continue;
		for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
			char *url = NULL;
			if (!strncmp(line, "deb ", 4) || !strncmp(line, "URIs:", 5))
				url = strstr(line, "http");
			if (!url || url > line + strcspn(line, "\n"))
				continue;
			size_t n = strcspn(url, " \t\n");
			if (memmem(url, n, "security", 8))
				continue;
			char *mirror = xstrndup(url, n);
			free(text);
			return mirror;
		}
		free(text);
	}
	return xstrdup("http://deb.debian.org/debian");
}

static int sha256_file(const char *path, char out[65])
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;

	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		EVP_DigestUpdate(ctx, buf, n);
	unsigned char digest[32];
	EVP_DigestFinal_ex(ctx, digest, NULL);
	EVP_MD_CTX_free(ctx);
	fclose(f);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", digest[i]);
	return 0;
}

static void sha256_string(const char *s, char out[65])
{
	unsigned char digest[32];
	unsigned int len = 0;

	EVP_Digest(s, strlen(s), digest, &len, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", digest[i]);
}

/* What identifies a base: how it is made. Changing any of it makes another base (and other layers). */
/* Check every name of the comma-separated LIST (from OPTION) before it reaches the setup script. */
static int check_package_names(const char *list, const char *option, char **error)
{
	if (!list)
		return 0;
	char *copy = xstrdup(list);
	int status = 0;

	for (char *name = strtok(copy, ","); name && status == 0; name = strtok(NULL, ","))
		if (!debian_package_name_valid(name))
			status = set_error(error, "invalid Debian package name \"%s\" in %s", name, option);
	free(copy);
	return status;
}

static char *base_inputs(const struct options *opts, char **error)
{
	if (check_package_names(opts->extra_packages, "--extra-packages", error) != 0 ||
	    check_package_names(opts->optional_packages, "the packages --depexts adds", error) != 0)
		return NULL;
	if (opts->base_tar) {
		char digest[65];
		struct stat st;
		if (stat(opts->base_tar, &st) == 0 && !S_ISREG(st.st_mode)) {
			*error = xasprintf("base tarball %s is not a regular file", opts->base_tar);
			return NULL;
		}
		if (sha256_file(opts->base_tar, digest) != 0) {
			*error = xasprintf("cannot read base tarball %s: %s", opts->base_tar, strerror(errno));
			return NULL;
		}
		return xasprintf("obake-base-1\ntar\n%s\n", digest);
	}
	char *suite = opts->suite ? xstrdup(opts->suite) : host_suite();
	char *mirror = opts->mirror ? xstrdup(opts->mirror) : host_mirror();
	/* Optional packages add a line only when there are some, so bases made without them keep their hash. */
	char *inputs = xasprintf("obake-base-1\ndebootstrap\n%s\n%s\n%s,%s\n%s%s%s", suite, mirror, BASE_PACKAGES,
				 opts->extra_packages ? opts->extra_packages : "",
				 opts->optional_packages && *opts->optional_packages ? "optional:" : "",
				 opts->optional_packages ? opts->optional_packages : "",
				 opts->optional_packages && *opts->optional_packages ? "\n" : "");
	free(suite);
	free(mirror);
	return inputs;
}

/* Commands run inside the new root as root, then as opam: the user, then opam's root and empty switch. */
static const char setup_script[] =
	"set -e\n"
	"id -u opam >/dev/null 2>&1 || useradd --create-home --uid 1000 --shell /bin/bash opam ||\n"
	"  adduser -D -u 1000 -h /home/opam opam\n"
	/* Builds bind-mount the download cache here; a missing mount point would land in every layer. */
	"mkdir -p /home/opam/.opam/download-cache /home/opam/.opam/repo/default\n"
	"mkdir -p /home/opam/obake-repository/packages\n"
	"echo 'opam-version: \"2.0\"' >/home/opam/obake-repository/repo\n"
	"chown -R opam:opam /home/opam\n"
	"cd /home/opam\n"
	/* A base without opam (a tarball for benchmarks of the engine) stops here. */
	"command -v opam >/dev/null 2>&1 || exit 0\n"
	"chroot --userspec=opam:opam --skip-chdir / env HOME=/home/opam USER=opam "
	"sh -c 'opam init --bare --disable-sandboxing --no-setup -y default /home/opam/obake-repository && "
	"opam switch create default --empty -y'\n"
	"apt-get clean >/dev/null 2>&1 || true\n"
	"rm -rf /var/lib/apt/lists/*\n";

/* LIST (comma-separated) with spaces between the names, for a shell command line. */
static char *space_separated(const char *list)
{
	char *copy = xstrdup(list);

	for (char *p = copy; *p; p++)
		if (*p == ',')
			*p = ' ';
	return copy;
}

/*
 * Write the apt steps of the setup script. EXTRA must all install. Each of OPTIONAL is first tried
 * with a simulated install, and left out when apt cannot install it or when it conflicts with one
 * kept before it. Not every name in opam's depexts exists in every Debian release, and one missing
 * name must not stop the whole base: only the packages that need it fail, and their logs name it.
 */
static void write_apt_steps(FILE *f, const char *extra, const char *optional)
{
	bool has_extra = extra && *extra, has_optional = optional && *optional;

	if (!has_extra && !has_optional)
		return;
	fputs("set -e\nexport DEBIAN_FRONTEND=noninteractive\napt-get update\n", f);
	if (has_extra) {
		char *list = space_separated(extra);
		fprintf(f, "apt-get install -y --no-install-recommends %s\n", list);
		free(list);
	}
	if (has_optional) {
		char *list = space_separated(optional);
		fprintf(f,
			"available=''\n: >" MISSING_PACKAGES_FILE "\n"
			"for p in %s; do\n"
			"  if apt-get install -s -y --no-install-recommends \"$p\" >/dev/null 2>&1; then\n"
			"    available=\"$available $p\"\n"
			"  else\n"
			"    echo \"$p\" >>" MISSING_PACKAGES_FILE "\n"
			"  fi\n"
			"done\n"
			/* Alternatives such as libcurl4-openssl-dev and libcurl4-gnutls-dev conflict: keep the first. */
			"if [ -n \"$available\" ] && ! apt-get install -s -y --no-install-recommends $available "
			">/dev/null "
			"2>&1; then\n"
			"  kept=''\n"
			"  for p in $available; do\n"
			"    if apt-get install -s -y --no-install-recommends $kept \"$p\" >/dev/null 2>&1; then\n"
			"      kept=\"$kept $p\"\n"
			"    else\n"
			"      echo \"$p\" >>" MISSING_PACKAGES_FILE "\n"
			"    fi\n"
			"  done\n"
			"  available=$kept\n"
			"fi\n"
			"[ -z \"$available\" ] || apt-get install -y --no-install-recommends $available\n",
			list);
		free(list);
	}
}

/*
 * Run the setup inside ROOTFS with /proc and /dev available, then unmount them. EXTRA and OPTIONAL:
 * comma-separated apt packages, the second left out when missing.
 */
static int setup_rootfs(const char *rootfs, const char *extra, const char *optional, const char *log, char **error)
{
	char *proc = xasprintf("%s/proc", rootfs), *dev = xasprintf("%s/dev", rootfs);
	char *script = xasprintf("%s/tmp/obake-setup.sh", rootfs);
	int status = -1;

	mkdir(proc, 0555);
	mkdir(dev, 0755);
	FILE *f = fopen(script, "w");
	if (!f) {
		*error = xasprintf("cannot write %s: %s", script, strerror(errno));
		goto out;
	}
	write_apt_steps(f, extra, optional);
	fputs(setup_script, f);
	fclose(f);
	if (mount("proc", proc, "proc", 0, NULL) != 0 || mount("/dev", dev, NULL, MS_BIND | MS_REC, NULL) != 0) {
		*error = xasprintf("cannot mount /proc and /dev into %s: %s", rootfs, strerror(errno));
		umount2(proc, MNT_DETACH);
		goto out;
	}
	char *argv[] = { "chroot", (char *)rootfs, "/bin/sh", "/tmp/obake-setup.sh", NULL };
	status = run_command(argv, log);
	umount2(dev, MNT_DETACH);
	umount2(proc, MNT_DETACH);
	unlink(script);
	if (status != 0)
		*error = xasprintf("setting up opam in the base failed (exit status %d); see %s", status, log);
out:
	free(proc);
	free(dev);
	free(script);
	return status == 0 ? 0 : -1;
}

static int create_base(const struct options *opts, const char *tmp, const char *rootfs, char **error)
{
	char *log = xasprintf("%s/base.log", tmp);
	int status;

	mkdir(rootfs, 0755);
	if (opts->base_tar) {
		char *argv[] = { "tar", "-xpf", (char *)opts->base_tar, "-C", (char *)rootfs, NULL };
		status = run_command(argv, log);
		if (status != 0)
			*error = xasprintf("cannot extract %s (exit status %d); see %s", opts->base_tar, status, log);
	} else {
		char *suite = opts->suite ? xstrdup(opts->suite) : host_suite();
		char *mirror = opts->mirror ? xstrdup(opts->mirror) : host_mirror();
		/*
		 * Extra packages are installed with apt afterwards: debootstrap fails to configure some
		 * of them (Debian 12's ocaml-nox) in its own second stage.
		 */
		char *include = xasprintf("--include=%s", BASE_PACKAGES);
		char *argv[] = { "debootstrap", "--variant=minbase", include, suite, (char *)rootfs, mirror, NULL };
		fprintf(stderr, "%s: creating the base with debootstrap %s from %s (a few minutes)\n", program_name,
			suite, mirror);
		status = run_command(argv, log);
		if (status != 0)
			*error = xasprintf("debootstrap %s from %s failed (exit status %d); see %s", suite, mirror,
					   status, log);
		free(suite);
		free(mirror);
		free(include);
	}
	if (status == 0 && setup_rootfs(rootfs, opts->base_tar ? NULL : opts->extra_packages,
					opts->base_tar ? NULL : opts->optional_packages, log, error) != 0)
		status = -1;
	free(log);
	return status == 0 ? 0 : -1;
}

/*
 * Remove the tmp-<id>-<pid> directories of base creations whose process is gone (killed, or the
 * machine stopped): they are never finished, and a whole Debian system each.
 */
static void remove_abandoned_bases(const char *bases)
{
	DIR *dir = opendir(bases);
	struct dirent *entry;

	if (!dir)
		return;
	while ((entry = readdir(dir)) != NULL) {
		const char *dash = strrchr(entry->d_name, '-');
		if (strncmp(entry->d_name, "tmp-", 4) != 0 || !dash)
			continue;
		char *end;
		long pid = strtol(dash + 1, &end, 10);
		if (*end != '\0' || pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		char *path = xasprintf("%s/%s", bases, entry->d_name);
		/* A creation killed during its setup leaves /proc and /dev mounted in its root. */
		const char *const mounts[] = { "rootfs/proc", "rootfs/dev" };
		for (size_t i = 0; i < ARRAY_LEN(mounts); i++) {
			char *mount_point = xasprintf("%s/%s", path, mounts[i]);
			umount2(mount_point, MNT_DETACH);
			free(mount_point);
		}
		remove_tree_or_warn(path);
		free(path);
	}
	closedir(dir);
}

int base_ensure(const struct options *opts, const char *store_root, bool create, struct base *out, char **error)
{
	char *inputs = base_inputs(opts, error);
	char id[65];

	memset(out, 0, sizeof(*out));
	if (!inputs)
		return -1;
	sha256_string(inputs, id);
	out->id = xstrdup(id);
	out->dir = xasprintf("%s/bases/%s", store_root, id);
	out->rootfs = xasprintf("%s/rootfs", out->dir);

	char *all_bases = xasprintf("%s/bases", store_root);
	remove_abandoned_bases(all_bases);
	free(all_bases);

	struct stat st;
	if (stat(out->rootfs, &st) == 0) {
		free(inputs);
		return 0;
	}
	if (!create) {
		*error = xasprintf("no base %s in %s: run 'obake base' with the same options first", id, store_root);
		free(inputs);
		return -1;
	}

	/* Made aside and renamed into place, so an interrupted creation never looks finished. */
	char *bases = xasprintf("%s/bases", store_root);
	char *tmp = xasprintf("%s/tmp-%s-%ld", bases, id, (long)getpid());
	char *tmp_rootfs = xasprintf("%s/rootfs", tmp);
	int status = -1;
	if ((mkdir(store_root, 0755) != 0 && errno != EEXIST) || (mkdir(bases, 0755) != 0 && errno != EEXIST) ||
	    mkdir(tmp, 0755) != 0) {
		*error = xasprintf("cannot create %s: %s", tmp, strerror(errno));
	} else if (create_base(opts, tmp, tmp_rootfs, error) == 0) {
		char *json = xasprintf("%s/base.json", tmp);
		FILE *f = fopen(json, "w");
		if (f) {
			fprintf(f, "{\"id\": \"%s\"}\n", id);
			fclose(f);
		}
		free(json);
		if (rename(tmp, out->dir) == 0 || errno == ENOTEMPTY || errno == EEXIST)
			status = 0;
		else
			*error = xasprintf("cannot rename %s to %s: %s", tmp, out->dir, strerror(errno));
	}
	if (status != 0) {
		/* Keep the log of a failed creation beside the bases; the error names it. */
		char *log = xasprintf("%s/base.log", tmp), *kept = xasprintf("%s/failed-%s.log", bases, id);
		if (rename(log, kept) == 0) {
			char *message = xasprintf("%s (log kept as %s)", *error ? *error : "base creation failed",
						  kept);
			free(*error);
			*error = message;
		}
		free(log);
		free(kept);
	}
	if (access(tmp, F_OK) == 0)
		remove_tree_or_warn(tmp);
	free(bases);
	free(tmp);
	free(tmp_rootfs);
	free(inputs);
	return status;
}

/* The value of "KEY: value" in `ocamlc -config` output TEXT, or "". The caller frees it. */
static char *config_value(const char *text, const char *key)
{
	size_t len = strlen(key);

	for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
		if (strncmp(line, key, len) == 0 && strncmp(line + len, ": ", 2) == 0)
			return xstrndup(line + len + 2, strcspn(line + len + 2, "\r\n"));
	return xstrdup("");
}

int base_detect_sys_ocaml(const struct base *b, char *values[4], char **error)
{
	/* The first line is the version; the configuration follows. No ocamlc prints nothing. */
	char *const argv[] = { "/bin/sh", "-c", "ocamlc -vnum && ocamlc -config || true", NULL };
	int exit_status;
	char *text = command_output(b->rootfs, argv, &exit_status, error);
	if (text && exit_status != 0) {
		set_error(error, "cannot run a shell in the base %s (exit status %d)", b->rootfs, exit_status);
		free(text);
		text = NULL;
	}
	if (!text)
		return -1;

	values[0] = xstrndup(text, strcspn(text, "\r\n"));
	/* The same names opam derives: amd64 is x86_64, i386 is i686, any os_type but Win32 has libc. */
	char *arch = config_value(text, "architecture");
	values[1] = xstrdup(strcmp(arch, "amd64") == 0 ? "x86_64" : strcmp(arch, "i386") == 0 ? "i686" : arch);
	values[2] = config_value(text, "ccomp_type");
	char *os_type = config_value(text, "os_type");
	values[3] = xstrdup(!*values[0] ? "" : strcmp(os_type, "Win32") == 0 ? "msvc" : "libc");
	free(arch);
	free(os_type);
	free(text);
	return 0;
}

char *base_missing_packages(const struct base *b)
{
	char *path = xasprintf("%s" MISSING_PACKAGES_FILE, b->rootfs);
	char *text = NULL;
	size_t len;

	if (read_file(path, &text, &len) != 0 || len == 0) {
		free(path);
		free(text);
		return NULL;
	}
	free(path);
	/* One name per line becomes a comma-separated list. */
	while (len > 0 && text[len - 1] == '\n')
		text[--len] = '\0';
	for (char *p = text; *p; p++)
		if (*p == '\n')
			*p = ',';
	return text;
}

void base_release(struct base *b)
{
	free(b->id);
	free(b->dir);
	free(b->rootfs);
	memset(b, 0, sizeof(*b));
}
