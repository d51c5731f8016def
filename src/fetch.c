/*
 * The source cache. Items with the same strongest checksum form one group, and one worker thread
 * fetches a whole group in order, so an archive that several packages share is downloaded once and
 * the other packages find it in the cache. Each worker owns one curl easy handle, which keeps
 * connections alive between its transfers; the number of workers caps the parallel transfers.
 */
#include "fetch.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "files.h"
#include "util.h"

enum {
	CONNECT_TIMEOUT_SECONDS = 30,
	/* A transfer slower than LOW_SPEED_BYTES per second for LOW_SPEED_SECONDS is aborted as stalled. */
	LOW_SPEED_BYTES = 1024,
	LOW_SPEED_SECONDS = 60,
	MAX_REDIRECTS = 10,
	/* Extra attempts at one URL after a transient failure (timeout, dropped connection, HTTP 408, 429, 5xx). */
	RETRIES = 2,
	/* Temporary files older than this are leftovers of a killed run. A live transfer writes more
	 * often, because curl aborts one that stalls for LOW_SPEED_SECONDS. */
	STALE_TEMP_SECONDS = 3600,
};

/* Temporary files live in the cache directory itself, so that rename() into place never crosses
 * file systems. opam only looks up <algorithm>/<xx>/<hash>, so it ignores them. */
#define TEMP_PREFIX ".download-"

#define VCS_REASON "version-control sources are not supported; the package needs a release archive"
#define CHECKSUM_SYNTAX "expected md5=, sha256= or sha512= followed by 32, 64 or 128 hex digits"

/* Digest kinds from weakest to strongest, the order of OpamHash.compare_kind in opam 2. */
enum digest_kind { DIGEST_MD5, DIGEST_SHA256, DIGEST_SHA512, DIGEST_KIND_COUNT };

#define HEX_MAX 128 /* hex digits of a SHA-512 */

static const struct {
	const char *name;
	size_t hex_len;
} digest_infos[DIGEST_KIND_COUNT] = {
	[DIGEST_MD5] = { "md5", 32 },
	[DIGEST_SHA256] = { "sha256", 64 },
	[DIGEST_SHA512] = { "sha512", 128 },
};

struct checksum {
	enum digest_kind kind;
	char hex[HEX_MAX + 1]; /* lowercase, as opam stores and looks up hashes */
};

/* Hex digests of one file, indexed by enum digest_kind. Only the requested kinds are filled. */
typedef char digest_set[DIGEST_KIND_COUNT][HEX_MAX + 1];

enum outcome { OUTCOME_FAILED, OUTCOME_CACHED, OUTCOME_DOWNLOADED };

/* One item being fetched: its parsed checksums and what became of it. */
struct item_state {
	const struct fetch_item *item;
	struct checksum *checksums; /* strongest first */
	size_t checksum_count;
	char *key; /* group key: "algorithm=hex" of the strongest checksum, or NULL without checksums */
	enum outcome outcome;
	bool no_checksum;
};

struct fetcher {
	const char *cache_dir;
	char *const *mirrors;
	size_t mirror_count;
	struct item_state *states;
	size_t *order;        /* indexes into states, the items of each group next to each other */
	size_t *group_starts; /* group g is order[group_starts[g]] up to order[group_starts[g + 1]] */
	size_t group_count;
	atomic_size_t next_group;
	atomic_uint link_counter; /* makes the names of temporary hard links unique within the process */
};

struct worker {
	struct fetcher *fetcher;
	CURL *curl; /* NULL when curl_easy_init failed; remote downloads then fail */
	char curl_error[CURL_ERROR_SIZE];
};

/* Kind of source that a URL names. */
enum url_kind { URL_REMOTE, URL_LOCAL_PATH, URL_VERSION_CONTROL, URL_UNSUPPORTED };

/* Messages about one item's attempts: printed as errors if it fails, the mismatches as warnings if not. */
struct attempt_log {
	struct strbuf failures;
	struct strbuf mismatches;
};

static void warn_locked(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print a warning as warn() does, but whole: warn() prints in several calls, which workers could interleave. */
static void warn_locked(const char *fmt, ...)
{
	struct strbuf text = { 0 };
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&text, fmt, ap);
	va_end(ap);
	flockfile(stderr);
	warn("%s", strbuf_str(&text));
	funlockfile(stderr);
	strbuf_release(&text);
}

static const EVP_MD *digest_md(enum digest_kind kind)
{
	switch (kind) {
	case DIGEST_MD5: return EVP_md5();
	case DIGEST_SHA256: return EVP_sha256();
	case DIGEST_SHA512: return EVP_sha512();
	case DIGEST_KIND_COUNT: break;
	}
	return NULL;
}

static bool is_hex_string(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return s[len] == '\0';
}

/*
 * Parse "algorithm=HEX" or a bare 32-digit md5, as OpamHash.of_string_opt does in opam 2: the
 * algorithm name is case-insensitive, uppercase hex digits are accepted, and the hex is lowercased.
 */
static bool parse_checksum(const char *text, struct checksum *out)
{
	const char *equals = strchr(text, '=');
	const char *hex = text;
	size_t name_len = equals ? (size_t)(equals - text) : 0;
	int kind = equals ? -1 : DIGEST_MD5;

	for (int k = 0; k < DIGEST_KIND_COUNT && equals; k++)
		if (strlen(digest_infos[k].name) == name_len && strncasecmp(text, digest_infos[k].name, name_len) == 0)
			kind = k;
	if (kind < 0)
		return false;
	if (equals)
		hex = equals + 1;

	size_t len = digest_infos[kind].hex_len;
	if (!is_hex_string(hex, len))
		return false;
	out->kind = (enum digest_kind)kind;
	for (size_t i = 0; i <= len; i++)
		out->hex[i] = (char)(hex[i] >= 'A' && hex[i] <= 'F' ? hex[i] - 'A' + 'a' : hex[i]);
	return true;
}

static char *checksum_path(const char *cache_dir, const struct checksum *c)
{
	return xasprintf("%s/%s/%.2s/%s", cache_dir, digest_infos[c->kind].name, c->hex, c->hex);
}

char *fetch_cache_path(const char *cache_dir, const char *checksum)
{
	struct checksum c;

	if (!parse_checksum(checksum, &c))
		return NULL;
	return checksum_path(cache_dir, &c);
}

static void to_hex(const unsigned char *bytes, unsigned len, char *hex)
{
	static const char digits[] = "0123456789abcdef";

	for (unsigned i = 0; i < len; i++) {
		hex[2 * i] = digits[bytes[i] >> 4];
		hex[2 * i + 1] = digits[bytes[i] & 15];
	}
	hex[2 * len] = '\0';
}

static int digest_fd(int fd, EVP_MD_CTX *const *contexts, const char *path, char **error)
{
	unsigned char buffer[1 << 16];

	for (;;) {
		ssize_t n = read(fd, buffer, sizeof(buffer));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error = xasprintf("cannot read %s: %s", path, strerror(errno));
			return -1;
		}
		if (n == 0)
			return 0;
		for (int k = 0; k < DIGEST_KIND_COUNT; k++)
			if (contexts[k])
				EVP_DigestUpdate(contexts[k], buffer, (size_t)n);
	}
}

/* Compute the digests of PATH for every kind in the bit set KINDS, in one pass over the file. */
static int hash_file(const char *path, unsigned kinds, digest_set out, char **error)
{
	EVP_MD_CTX *contexts[DIGEST_KIND_COUNT] = { 0 };
	int rc = -1;
	/* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below instead. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;

	if (fd < 0) {
		*error = xasprintf("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		*error = xasprintf("%s is not a regular file", path);
		close(fd);
		return -1;
	}
	for (int k = 0; k < DIGEST_KIND_COUNT; k++) {
		if (!(kinds & (1u << k)))
			continue;
		contexts[k] = EVP_MD_CTX_new();
		/* md5 is unavailable when OpenSSL runs in FIPS mode. */
		if (!contexts[k] || !EVP_DigestInit_ex(contexts[k], digest_md((enum digest_kind)k), NULL)) {
			*error = xasprintf("cannot compute %s digests: OpenSSL does not provide the algorithm",
					   digest_infos[k].name);
			goto out;
		}
	}
	if (digest_fd(fd, contexts, path, error) < 0)
		goto out;
	for (int k = 0; k < DIGEST_KIND_COUNT; k++) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned len = 0;
		if (!contexts[k])
			continue;
		if (!EVP_DigestFinal_ex(contexts[k], md, &len)) {
			*error = xasprintf("cannot compute the %s digest of %s: OpenSSL failed", digest_infos[k].name,
					   path);
			goto out;
		}
		to_hex(md, len, out[k]);
	}
	rc = 0;
out:
	for (int k = 0; k < DIGEST_KIND_COUNT; k++)
		EVP_MD_CTX_free(contexts[k]);
	close(fd);
	return rc;
}

static unsigned checksum_kinds(const struct checksum *checksums, size_t count)
{
	unsigned kinds = 0;

	for (size_t i = 0; i < count; i++)
		kinds |= 1u << checksums[i].kind;
	return kinds;
}

/* Return the index of the first of CHECKSUMS that DIGESTS does not match, or -1 if all match. */
static long first_mismatch(const struct checksum *checksums, size_t count, digest_set digests)
{
	for (size_t i = 0; i < count; i++)
		if (strcmp(checksums[i].hex, digests[checksums[i].kind]) != 0)
			return (long)i;
	return -1;
}

static char *mismatch_message(const struct checksum *expected, digest_set digests)
{
	const char *name = digest_infos[expected->kind].name;

	return xasprintf("checksum mismatch: expected %s=%s, got %s=%s", name, expected->hex, name,
			 digests[expected->kind]);
}

/* Check PATH against every one of CHECKSUMS: 1 if all match, 0 on a mismatch, -1 if it cannot be read. */
static int verify_checksums(const char *path, const struct checksum *checksums, size_t count, char **error)
{
	digest_set digests;

	if (hash_file(path, checksum_kinds(checksums, count), digests, error) < 0)
		return -1;
	long bad = first_mismatch(checksums, count, digests);
	if (bad >= 0) {
		*error = mismatch_message(&checksums[bad], digests);
		return 0;
	}
	return 1;
}

bool fetch_verify(const char *file, const char *checksum, char **error)
{
	struct checksum c;
	char *message = NULL;
	bool ok = false;

	if (!parse_checksum(checksum, &c))
		message = xasprintf("invalid checksum '%s': %s", checksum, CHECKSUM_SYNTAX);
	else
		ok = verify_checksums(file, &c, 1, &message) == 1;
	if (error)
		*error = message;
	else
		free(message);
	return ok;
}

static bool is_vcs_name(const char *s, size_t len)
{
	static const char *const names[] = { "git", "hg", "darcs" };

	for (size_t i = 0; i < ARRAY_LEN(names); i++)
		if (strlen(names[i]) == len && strncmp(s, names[i], len) == 0)
			return true;
	return false;
}

/*
 * Whether the path part of a URL names a version-control repository the way OpamUrl.parse guesses
 * it in opam 2: a ".git", ".hg" or ".darcs" suffix, or else a "git@" style user.
 */
static bool path_looks_like_vcs(const char *path)
{
	size_t len = strcspn(path, "#");
	const char *dot = memrchr(path, '.', len);
	const char *suffix = dot ? dot + 1 : NULL;
	size_t suffix_len = dot ? (size_t)(path + len - suffix) : 0;

	/* opam's suffix is the text after the last '.', when it is not empty and has no '/' or '\\'. */
	if (suffix_len > 0 && !memchr(suffix, '/', suffix_len) && !memchr(suffix, '\\', suffix_len))
		return is_vcs_name(suffix, suffix_len);
	const char *at = memchr(path, '@', len);
	return at && is_vcs_name(path, (size_t)(at - path));
}

/* An scp-style location such as "host:dir/file": a ':' before any '/', after at least two characters. */
static bool looks_like_ssh_path(const char *path)
{
	size_t len = strcspn(path, "/:");

	return len >= 2 && path[len] == ':';
}

/* Classify URL the way opam reads url sources. SCHEME receives the scheme of an unsupported URL. */
static enum url_kind classify_url(const char *url, char **scheme)
{
	static const char *const remote[] = { "http", "https", "ftp", "ftps", "file" };
	const char *separator = strstr(url, "://");

	*scheme = NULL;
	if (!separator) {
		if (path_looks_like_vcs(url))
			return URL_VERSION_CONTROL;
		if (looks_like_ssh_path(url)) {
			*scheme = xstrdup("ssh");
			return URL_UNSUPPORTED;
		}
		return URL_LOCAL_PATH;
	}

	/* "git+https://" names the version-control system before the '+' and the transport after it. */
	const char *transport = url;
	const char *plus = memchr(url, '+', (size_t)(separator - url));
	if (plus && is_vcs_name(url, (size_t)(plus - url)))
		return URL_VERSION_CONTROL;
	if (plus)
		transport = plus + 1;
	size_t len = (size_t)(separator - transport);
	if (is_vcs_name(transport, len) || path_looks_like_vcs(separator + 3))
		return URL_VERSION_CONTROL;
	for (size_t i = 0; i < ARRAY_LEN(remote) && !plus; i++)
		if (strlen(remote[i]) == len && strncasecmp(transport, remote[i], len) == 0)
			return URL_REMOTE;
	*scheme = xstrndup(url, (size_t)(separator - url));
	return URL_UNSUPPORTED;
}

static int truncate_fd(int fd)
{
	return ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0 ? 0 : -1;
}

static int copy_local_file(const char *path, int out, char **error)
{
	struct stat st;
	/* O_NONBLOCK: a FIFO must not block the fetch; it is refused as not a regular file. */
	int in = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (in < 0) {
		*error = xasprintf("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	int rc = -1;
	if (fstat(in, &st) == 0 && !S_ISREG(st.st_mode))
		*error = xasprintf("%s is not a regular file", path);
	else if (truncate_fd(out) < 0 || copy_bytes(in, out) < 0)
		*error = xasprintf("cannot copy %s into the cache: %s", path, strerror(errno));
	else
		rc = 0;
	close(in);
	return rc;
}

/* Copy SOURCE to the new file TARGET; -1 with errno set on failure. */
static int copy_to_new_file(const char *source, const char *target)
{
	struct stat st;
	int in = open(source, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (in < 0)
		return -1;
	if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(in);
		errno = EINVAL;
		return -1;
	}
	int out = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	int rc = out < 0 ? -1 : copy_bytes(in, out);
	int saved_errno = errno;

	if (out >= 0 && close(out) != 0 && rc == 0) {
		rc = -1;
		saved_errno = errno;
	}
	close(in);
	errno = saved_errno;
	return rc;
}

/* Create the directories leading to PATH, as `mkdir -p "$(dirname PATH)"` does. */
static int make_parent_dirs(const char *path)
{
	char *copy = xstrdup(path);
	int rc = 0, saved_errno = 0;

	for (char *p = copy + 1; *p && rc == 0; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, 0755) != 0 && errno != EEXIST) {
			rc = -1;
			saved_errno = errno;
		}
		*p = '/';
	}
	free(copy);
	errno = saved_errno;
	return rc;
}

static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/*
 * Make TARGET a hard link to SOURCE, replacing whatever TARGET was. The link is made under a
 * temporary name and renamed over TARGET, so that opam finds either the old file or the new one.
 */
static int link_into_place(struct fetcher *f, const char *source, const char *target, char **error)
{
	/* rename() between two links of one file succeeds without doing anything, leaving the temporary name. */
	if (same_file(source, target))
		return 0;
	if (make_parent_dirs(target) < 0) {
		*error = xasprintf("cannot create the directory of %s: %s", target, strerror(errno));
		return -1;
	}

	char *tmp = xasprintf("%s/" TEMP_PREFIX "%ld-%u.link", f->cache_dir, (long)getpid(),
			      atomic_fetch_add(&f->link_counter, 1));
	unlink(tmp); /* a leftover of an earlier process that had the same pid */
	int rc = link(source, tmp);
	/* File systems without hard links get a copy. */
	if (rc != 0 && (errno == EPERM || errno == EXDEV || errno == EMLINK || errno == ENOTSUP))
		rc = copy_to_new_file(source, tmp);
	if (rc == 0)
		rc = rename(tmp, target);
	if (rc != 0) {
		*error = xasprintf("cannot store %s: %s", target, strerror(errno));
		unlink(tmp);
	}
	free(tmp);
	return rc;
}

/* Store SOURCE at the cache path of every one of CHECKSUMS. */
static int install_everywhere(struct fetcher *f, const char *source, const struct checksum *checksums, size_t count,
			      char **error)
{
	for (size_t i = 0; i < count; i++) {
		char *path = checksum_path(f->cache_dir, &checksums[i]);
		int rc = link_into_place(f, source, path, error);
		free(path);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* Create a temporary file for a download in CACHE_DIR. */
static int create_temp(const char *cache_dir, char **path, char **error)
{
	*path = xasprintf("%s/" TEMP_PREFIX "%ld-XXXXXX", cache_dir, (long)getpid());
	int fd = mkostemp(*path, O_CLOEXEC);

	if (fd < 0) {
		*error = xasprintf("cannot create a temporary file in %s: %s", cache_dir, strerror(errno));
		free(*path);
		*path = NULL;
		return -1;
	}
	/* mkostemp creates the file with mode 0600, but opam in the build container may run as another user. */
	if (fchmod(fd, 0644) != 0)
		warn_locked("cannot make %s readable by all users: %s", *path, strerror(errno));
	return fd;
}

/*
 * Remove the temporary files of killed runs. The status change time counts, because link() and
 * every write update it, so the files of a run still in progress are kept.
 */
static void remove_stale_temps(const char *cache_dir)
{
	DIR *dir = opendir(cache_dir);
	struct dirent *entry;
	time_t now = time(NULL);

	if (!dir)
		return;
	while ((entry = readdir(dir)) != NULL) {
		struct stat st;
		if (strncmp(entry->d_name, TEMP_PREFIX, strlen(TEMP_PREFIX)) != 0)
			continue;
		if (fstatat(dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
			continue;
		/* .download-<pid>-...: the file of a process that is gone goes at once, any other after an hour. */
		char *end;
		long pid = strtol(entry->d_name + strlen(TEMP_PREFIX), &end, 10);
		bool orphan = pid > 0 && *end == '-' && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
		if (orphan || now - st.st_ctime > STALE_TEMP_SECONDS)
			unlinkat(dirfd(dir), entry->d_name, 0);
	}
	closedir(dir);
}

/* Destination of curl's writes: the temporary file, and the errno of a failed write. */
/*
 * The largest download accepted. The largest archives in opam-repository are a few hundred
 * megabytes; a server that streams without end must not fill the disk.
 */
#define MAX_DOWNLOAD_BYTES (4ULL << 30)

struct sink {
	int fd;
	int write_errno;
	unsigned long long written;
	bool too_large;
};

static size_t write_body(char *data, size_t size, size_t count, void *userdata)
{
	struct sink *sink = userdata;
	size_t len = size * count;

	sink->written += len;
	if (sink->written > MAX_DOWNLOAD_BYTES) {
		sink->too_large = true;
		return 0;
	}
	if (write_all(sink->fd, data, len) < 0) {
		sink->write_errno = errno;
		return 0; /* a short count makes curl abort the transfer with CURLE_WRITE_ERROR */
	}
	return len;
}

/*
 * Allow http, https, ftp and file URLs, and redirects to http and https only, so that a remote
 * server cannot redirect a download to a local file.
 */
static void set_protocols(CURL *curl)
{
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 added the _STR options and deprecated the bit masks */
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https,ftp,ftps,file");
	curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS,
			 (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS | CURLPROTO_FTP | CURLPROTO_FTPS | CURLPROTO_FILE));
	curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
}

/* Set from a signal handler by fetch_request_stop: no new download starts, running ones abort. */
static volatile sig_atomic_t stop_requested;

void fetch_request_stop(void)
{
	stop_requested = 1;
}

/* curl calls this about once a second and during transfers; non-zero aborts the transfer. */
static int check_stop(void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	(void)data;
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return stop_requested ? 1 : 0;
}

static CURL *open_curl(char *error_buffer)
{
	CURL *curl = curl_easy_init();

	if (!curl)
		return NULL;
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
	/* Several threads use curl, so it must not time out name lookups with signals. */
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(curl, CURLOPT_MAXREDIRS, (long)MAX_REDIRECTS);
	set_protocols(curl);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_SECONDS);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, (long)LOW_SPEED_BYTES);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, (long)LOW_SPEED_SECONDS);
	curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "obake");
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_body);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, check_stop);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	return curl;
}

/* Failures worth another attempt, the transient ones of `curl --retry` plus dropped connections. */
static bool is_transient(CURLcode code, long http_status)
{
	switch (code) {
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_PARTIAL_FILE:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING: return true;
	case CURLE_HTTP_RETURNED_ERROR: return http_status == 408 || http_status == 429 || http_status >= 500;
	default: return false;
	}
}

static char *curl_failure_message(const struct worker *w, CURLcode code, long http_status, const struct sink *sink,
				  unsigned attempts)
{
	const char *message = w->curl_error[0] ? w->curl_error : curl_easy_strerror(code);

	if (code == CURLE_ABORTED_BY_CALLBACK && stop_requested)
		return xstrdup("stopped, because obake was interrupted");
	if (code == CURLE_WRITE_ERROR && sink->too_large)
		return xasprintf("the download passed %llu GiB and was stopped", MAX_DOWNLOAD_BYTES >> 30);
	if (code == CURLE_WRITE_ERROR && sink->write_errno)
		return xasprintf("cannot write the download into the cache: %s", strerror(sink->write_errno));
	if (code == CURLE_UNSUPPORTED_PROTOCOL && http_status >= 300 && http_status < 400)
		return xasprintf("redirect not followed, because only http and https redirects are allowed: %s",
				 message);
	if (attempts > 1)
		return xasprintf("%s (failed %u times)", message, attempts);
	return xstrdup(message);
}

/* Download URL into FD with curl, retrying transient failures RETRIES times. */
static int fetch_remote(struct worker *w, const char *package, const char *url, int fd, char **error)
{
	if (!w->curl) {
		*error = xstrdup("cannot create a curl handle");
		return -1;
	}
	curl_easy_setopt(w->curl, CURLOPT_URL, url);
	for (unsigned attempt = 1;; attempt++) {
		struct sink sink = { fd, 0, 0, false };
		if (truncate_fd(fd) < 0) {
			*error = xasprintf("cannot truncate the temporary file: %s", strerror(errno));
			return -1;
		}
		w->curl_error[0] = '\0';
		curl_easy_setopt(w->curl, CURLOPT_WRITEDATA, &sink);
		CURLcode code = curl_easy_perform(w->curl);
		if (code == CURLE_OK)
			return 0;

		long status = 0;
		curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
		char *message = curl_failure_message(w, code, status, &sink, attempt);
		if (attempt > RETRIES || !is_transient(code, status) || stop_requested) {
			*error = message;
			return -1;
		}
		warn_locked("%s: %s: %s; retrying in %u s", package, url, message, attempt);
		free(message);
		sleep(attempt);
	}
}

/* The path of a file:///PATH URL with its %XX escapes decoded, or NULL for any other URL. */
static char *file_url_path(const char *url)
{
	if (strncmp(url, "file:///", 8) != 0)
		return NULL;
	const char *s = url + 7;
	char *path = xmalloc(strlen(s) + 1), *out = path;

	for (; *s; s++) {
		unsigned hi, lo;
		if (s[0] == '%' && sscanf(s + 1, "%1x%1x", &hi, &lo) == 2 && (hi << 4 | lo) != 0) {
			*out++ = (char)(hi << 4 | lo);
			s += 2;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
	return path;
}

/* Download URL, a remote URL or a local path, into FD. */
static int download(struct worker *w, const char *package, const char *url, int fd, char **error)
{
	char *scheme = NULL;
	/* Local files are copied here rather than by libcurl, which would wait for ever on a FIFO. */
	char *local = file_url_path(url);
	if (local) {
		int status = copy_local_file(local, fd, error);
		free(local);
		return status;
	}

	switch (classify_url(url, &scheme)) {
	case URL_REMOTE: return fetch_remote(w, package, url, fd, error);
	case URL_LOCAL_PATH: return copy_local_file(url, fd, error);
	case URL_VERSION_CONTROL: *error = xstrdup(VCS_REASON); return -1;
	case URL_UNSUPPORTED: break;
	}
	*error = xasprintf("unsupported URL scheme '%s': only http, https, ftp and file URLs and local paths can be "
			   "fetched",
			   scheme);
	free(scheme);
	return -1;
}

/* The location of C in an archive mirror, a directory or a URL in opam's <algorithm>/<xx>/<hash> layout. */
static char *mirror_location(const char *mirror, const struct checksum *c)
{
	size_t len = strlen(mirror);

	while (len > 1 && mirror[len - 1] == '/')
		len--;
	return xasprintf("%.*s/%s/%.2s/%s", (int)len, mirror, digest_infos[c->kind].name, c->hex, c->hex);
}

/* URLs to try for S, in order: each archive mirror under each checksum, the source URL, then the source's mirrors. */
static char **list_candidates(const struct fetcher *f, const struct item_state *s, size_t *count)
{
	const struct package_source *source = s->item->source;
	size_t n = 0;
	char **urls = xcalloc(f->mirror_count * s->checksum_count + 1 + source->mirror_count, sizeof(*urls));

	for (size_t m = 0; m < f->mirror_count; m++)
		for (size_t c = 0; c < s->checksum_count; c++)
			urls[n++] = mirror_location(f->mirrors[m], &s->checksums[c]);
	urls[n++] = xstrdup(source->src);
	for (uint32_t i = 0; i < source->mirror_count; i++)
		urls[n++] = xstrdup(source->mirrors[i]);
	*count = n;
	return urls;
}

static void log_attempt(struct attempt_log *log, const struct item_state *s, const char *url, const char *reason,
			bool mismatch)
{
	strbuf_addf(&log->failures, "%s: %s: %s: %s\n", program_name, s->item->package, url, reason);
	if (mismatch)
		strbuf_addf(&log->mismatches, "%s: warning: %s: %s: %s\n", program_name, s->item->package, url, reason);
}

enum store_result { STORE_DONE, STORE_REJECTED, STORE_CACHE_FAILED };

/* Verify the download in TMP against S's checksums, or compute its sha256 if it has none, and store it. */
static enum store_result store_download(struct fetcher *f, const struct item_state *s, const char *tmp, char **error,
					bool *mismatch)
{
	struct checksum computed = { .kind = DIGEST_SHA256 };
	const struct checksum *checksums = s->checksums;
	size_t count = s->checksum_count;

	*mismatch = false;
	if (count == 0) {
		digest_set digests;
		if (hash_file(tmp, 1u << DIGEST_SHA256, digests, error) < 0)
			return STORE_REJECTED;
		memcpy(computed.hex, digests[DIGEST_SHA256], sizeof(computed.hex));
		checksums = &computed;
		count = 1;
	} else {
		int verified = verify_checksums(tmp, checksums, count, error);
		if (verified != 1) {
			*mismatch = verified == 0;
			return STORE_REJECTED;
		}
	}
	return install_everywhere(f, tmp, checksums, count, error) == 0 ? STORE_DONE : STORE_CACHE_FAILED;
}

/* Try each candidate URL of S until one gives a file that matches its checksums. */
static enum outcome download_item(struct worker *w, const struct item_state *s, struct attempt_log *log)
{
	struct fetcher *f = w->fetcher;
	char *tmp, *error = NULL;
	int fd = create_temp(f->cache_dir, &tmp, &error);

	if (fd < 0) {
		log_attempt(log, s, s->item->source->src, error, false);
		free(error);
		return OUTCOME_FAILED;
	}

	size_t count;
	char **urls = list_candidates(f, s, &count);
	enum store_result result = STORE_REJECTED;
	for (size_t i = 0; i < count && result == STORE_REJECTED; i++) {
		bool mismatch = false;
		if (download(w, s->item->package, urls[i], fd, &error) == 0)
			result = store_download(f, s, tmp, &error, &mismatch);
		if (result != STORE_DONE)
			log_attempt(log, s, urls[i], error, mismatch);
		free(error);
		error = NULL;
	}

	for (size_t i = 0; i < count; i++)
		free(urls[i]);
	free(urls);
	close(fd);
	unlink(tmp);
	free(tmp);
	return result == STORE_DONE ? OUTCOME_DOWNLOADED : OUTCOME_FAILED;
}

/*
 * Look for a verified copy of S's file at the cache path of any of its checksums, and return its
 * path or NULL. A file that does not match the checksum it is stored under is corrupt, a truncated
 * download for example, so it is removed.
 */
static char *find_cached(const struct fetcher *f, const struct item_state *s)
{
	unsigned kinds = checksum_kinds(s->checksums, s->checksum_count);

	for (size_t i = 0; i < s->checksum_count; i++) {
		const struct checksum *c = &s->checksums[i];
		char *path = checksum_path(f->cache_dir, c);
		char *error = NULL;
		digest_set digests;
		struct stat st;

		if (stat(path, &st) != 0) {
			free(path);
			continue;
		}
		if (hash_file(path, kinds, digests, &error) < 0) {
			warn_locked("%s: %s; fetching it again", s->item->package, error);
			free(error);
		} else if (strcmp(digests[c->kind], c->hex) != 0) {
			error = mismatch_message(c, digests);
			warn_locked("%s: removing %s from the cache because of a %s", s->item->package, path, error);
			unlink(path);
			free(error);
		} else if (first_mismatch(s->checksums, s->checksum_count, digests) < 0) {
			return path;
		}
		free(path);
	}
	return NULL;
}

static void fetch_item(struct worker *w, struct item_state *s)
{
	struct attempt_log log = { 0 };
	char *cached = s->checksum_count ? find_cached(w->fetcher, s) : NULL;

	if (cached) {
		char *error = NULL;
		/* Link the paths of the item's other checksums too, which an older cache may lack. */
		s->outcome = OUTCOME_CACHED;
		if (install_everywhere(w->fetcher, cached, s->checksums, s->checksum_count, &error) < 0) {
			log_attempt(&log, s, s->item->source->src, error, false);
			s->outcome = OUTCOME_FAILED;
			free(error);
		}
		free(cached);
	} else {
		s->outcome = download_item(w, s, &log);
	}

	/* One call per message, so that the lines of parallel workers do not interleave. */
	if (s->outcome == OUTCOME_FAILED)
		fputs(strbuf_str(&log.failures), stderr);
	else
		fputs(strbuf_str(&log.mismatches), stderr);
	strbuf_release(&log.failures);
	strbuf_release(&log.mismatches);
}

static void *run_worker(void *arg)
{
	struct fetcher *f = arg;
	struct worker w = { .fetcher = f };

	w.curl = open_curl(w.curl_error);
	for (;;) {
		size_t g = atomic_fetch_add(&f->next_group, 1);
		if (g >= f->group_count || stop_requested)
			break;
		for (size_t i = f->group_starts[g]; i < f->group_starts[g + 1]; i++)
			fetch_item(&w, &f->states[f->order[i]]);
	}
	if (w.curl)
		curl_easy_cleanup(w.curl);
	return NULL;
}

static void report_item_failure(const struct fetch_item *item, const char *reason)
{
	const char *url = item->source && item->source->src ? item->source->src : "(no URL)";

	fprintf(stderr, "%s: %s: %s: %s\n", program_name, item->package, url, reason);
}

static void sort_strongest_first(struct checksum *checksums, size_t count)
{
	for (size_t i = 1; i < count; i++)
		for (size_t j = i; j > 0 && checksums[j - 1].kind < checksums[j].kind; j--) {
			struct checksum t = checksums[j];
			checksums[j] = checksums[j - 1];
			checksums[j - 1] = t;
		}
}

/* Parse ITEM's checksums into S. Return false, after printing the reason, if ITEM cannot be fetched. */
static bool prepare_item(struct item_state *s, const struct fetch_item *item)
{
	const struct package_source *source = item->source;
	char *scheme = NULL;

	s->item = item;
	s->outcome = OUTCOME_FAILED;
	if (!source || !source->src) {
		report_item_failure(item, "the source has no URL");
		return false;
	}
	s->checksums = xcalloc(source->checksum_count, sizeof(*s->checksums));
	for (uint32_t i = 0; i < source->checksum_count; i++) {
		if (parse_checksum(source->checksums[i], &s->checksums[i]))
			continue;
		char *reason = xasprintf("invalid checksum '%s': %s", source->checksums[i], CHECKSUM_SYNTAX);
		report_item_failure(item, reason);
		free(reason);
		return false;
	}
	s->checksum_count = source->checksum_count;
	sort_strongest_first(s->checksums, s->checksum_count);

	/* Unsupported schemes are rejected later, after the archive mirrors had their chance. */
	if (classify_url(source->src, &scheme) == URL_VERSION_CONTROL) {
		report_item_failure(item, VCS_REASON);
		return false;
	}
	free(scheme);
	s->no_checksum = s->checksum_count == 0;
	if (s->checksum_count)
		s->key = xasprintf("%s=%s", digest_infos[s->checksums[0].kind].name, s->checksums[0].hex);
	return true;
}

struct keyed_index {
	const char *key;
	size_t index;
};

/* Order by key, items without a key last, then by index so that each group keeps the callers' order. */
static int compare_keyed(const void *a, const void *b)
{
	const struct keyed_index *x = a, *y = b;

	if (x->key && y->key) {
		int c = strcmp(x->key, y->key);
		if (c != 0)
			return c;
	} else if (x->key || y->key) {
		return x->key ? -1 : 1;
	}
	return (x->index > y->index) - (x->index < y->index);
}

/* Group the prepared items (those in READY) by their strongest checksum. Items without one are alone. */
static void group_items(struct fetcher *f, const bool *ready, size_t count)
{
	struct keyed_index *keyed = xcalloc(count, sizeof(*keyed));
	size_t n = 0;

	for (size_t i = 0; i < count; i++)
		if (ready[i])
			keyed[n++] = (struct keyed_index){ f->states[i].key, i };
	qsort(keyed, n, sizeof(*keyed), compare_keyed);

	f->order = xcalloc(n + 1, sizeof(*f->order));
	f->group_starts = xcalloc(n + 1, sizeof(*f->group_starts));
	f->group_count = 0;
	for (size_t i = 0; i < n; i++) {
		f->order[i] = keyed[i].index;
		if (i == 0 || !keyed[i].key || !keyed[i - 1].key || strcmp(keyed[i].key, keyed[i - 1].key) != 0)
			f->group_starts[f->group_count++] = i;
	}
	f->group_starts[f->group_count] = n;
	free(keyed);
}

/* Run up to JOBS workers, the calling thread being one of them. */
static void run_workers(struct fetcher *f, unsigned jobs)
{
	size_t workers = jobs ? jobs : 1;

	if (workers > f->group_count)
		workers = f->group_count;
	if (workers == 0)
		return;

	pthread_t *threads = xcalloc(workers, sizeof(*threads));
	size_t started = 0;
	for (size_t t = 1; t < workers; t++) {
		if (pthread_create(&threads[t], NULL, run_worker, f) != 0)
			break;
		started = t;
	}
	run_worker(f);
	for (size_t t = 1; t <= started; t++)
		pthread_join(threads[t], NULL);
	free(threads);
}

static CURLcode curl_init_result;

static void init_curl(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Create CACHE_DIR, clear leftovers of killed runs and initialize libcurl. Return false after printing a failure. */
static bool prepare_cache(const char *cache_dir)
{
	static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
	char *probe = xasprintf("%s/", cache_dir);
	int rc = make_parent_dirs(probe);

	free(probe);
	if (rc < 0) {
		fprintf(stderr, "%s: cannot create the source cache %s: %s\n", program_name, cache_dir,
			strerror(errno));
		return false;
	}
	remove_stale_temps(cache_dir);
	/* curl_global_init is thread-safe only from libcurl 7.84.0 on, and only in builds with the
	 * CURL_VERSION_THREADSAFE feature, so it runs once, before the workers start. */
	pthread_once(&curl_once, init_curl);
	if (curl_init_result != CURLE_OK)
		warn("cannot initialize libcurl: %s; only local files can be fetched",
		     curl_easy_strerror(curl_init_result));
	return true;
}

static void count_outcomes(const struct item_state *states, size_t count, struct fetch_stats *stats)
{
	memset(stats, 0, sizeof(*stats));
	for (size_t i = 0; i < count; i++) {
		switch (states[i].outcome) {
		case OUTCOME_CACHED: stats->cached++; break;
		case OUTCOME_DOWNLOADED: stats->downloaded++; break;
		case OUTCOME_FAILED: stats->failed++; break;
		}
		if (states[i].outcome == OUTCOME_DOWNLOADED && states[i].no_checksum)
			stats->no_checksum++;
	}
}

/*
 * Every item ends up cached, downloaded or failed, so those three counts add up to COUNT. The
 * no_checksum items are among the downloaded ones. JOBS 0 counts as 1.
 */
unsigned fetch_all(const char *cache_dir, const struct fetch_item *items, size_t count, char *const *mirrors,
		   size_t mirror_count, unsigned jobs, struct fetch_stats *stats)
{
	return fetch_all_flags(cache_dir, items, count, mirrors, mirror_count, jobs, stats, NULL);
}

unsigned fetch_all_flags(const char *cache_dir, const struct fetch_item *items, size_t count, char *const *mirrors,
			 size_t mirror_count, unsigned jobs, struct fetch_stats *stats, bool *item_failed)
{
	struct fetcher f = { .cache_dir = cache_dir, .mirrors = mirrors, .mirror_count = mirror_count };
	struct fetch_stats local;
	bool *ready = xcalloc(count + 1, sizeof(*ready));

	f.states = xcalloc(count + 1, sizeof(*f.states));
	if (prepare_cache(cache_dir))
		for (size_t i = 0; i < count; i++)
			ready[i] = prepare_item(&f.states[i], &items[i]);
	group_items(&f, ready, count);
	run_workers(&f, jobs);

	if (!stats)
		stats = &local;
	count_outcomes(f.states, count, stats);
	for (size_t i = 0; item_failed && i < count; i++)
		item_failed[i] = f.states[i].outcome == OUTCOME_FAILED;
	for (size_t i = 0; i < count; i++) {
		free(f.states[i].checksums);
		free(f.states[i].key);
	}
	free(f.states);
	free(f.order);
	free(f.group_starts);
	free(ready);
	return stats->failed;
}
