/*
 * tbprof: a guest-instruction profiler for the lab, as a QEMU TCG plugin.
 *
 * perf inside a TCG guest has no PMU and its timer samples land almost only in the
 * idle loop, so the lab had no profile of where the guest's CPU goes. This plugin
 * counts, for every translation block, how often it runs (an inline add the JIT puts
 * into the block, so the cost is small), and writes "vaddr insns count" lines that
 * tools/lab/prof/tbprof-report turns into instructions per kernel symbol.
 *
 * Control is a file in the run directory the guest shares over 9p (dir=DIR):
 *   the guest writes "start" to DIR/tbprof.ctl -> all counts are zeroed;
 *   the guest writes "stop NAME"              -> counts go to DIR/NAME.tbprof.
 * The plugin removes the control file once it has acted on it.
 *
 * Only the few entry points used here are declared, from QEMU 7.2's plugin API
 * (version 1); QEMU checks qemu_plugin_version when it loads the plugin.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_info_t;
typedef void (*tb_trans_cb)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*udata_cb)(qemu_plugin_id_t id, void *userdata);
enum { INLINE_ADD_U64 = 0 };

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, int op, void *ptr,
					      uint64_t imm);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, udata_cb cb, void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* One record per (block start, length); retranslations of the same block share it.
 * Records are never freed or moved: the JIT'd code holds a pointer to the count. */
struct rec {
	uint64_t vaddr;
	uint64_t count;
	uint32_t insns;
	struct rec *next; /* hash chain */
};

#define CHUNK 65536
#define HBITS 20
static struct rec *table[1u << HBITS];
static struct rec **chunks;
static size_t nchunks, used_in_chunk = CHUNK;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char dir[4096];

static unsigned hash(uint64_t v, uint32_t n)
{
	uint64_t h = (v ^ ((uint64_t)n << 48)) * 0x9E3779B97F4A7C15ull;
	return (unsigned)(h >> (64 - HBITS));
}

static struct rec *lookup(uint64_t vaddr, uint32_t insns)
{
	unsigned h = hash(vaddr, insns);
	struct rec *r;
	for (r = table[h]; r; r = r->next)
		if (r->vaddr == vaddr && r->insns == insns)
			return r;
	if (used_in_chunk == CHUNK) {
		struct rec **c = realloc(chunks, (nchunks + 1) * sizeof(*chunks));
		if (!c)
			return NULL;
		chunks = c;
		chunks[nchunks] = calloc(CHUNK, sizeof(struct rec));
		if (!chunks[nchunks])
			return NULL;
		nchunks++;
		used_in_chunk = 0;
	}
	r = &chunks[nchunks - 1][used_in_chunk++];
	r->vaddr = vaddr;
	r->insns = insns;
	r->next = table[h];
	table[h] = r;
	return r;
}

static void on_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	(void)id;
	pthread_mutex_lock(&lock);
	struct rec *r = lookup(qemu_plugin_tb_vaddr(tb), (uint32_t)qemu_plugin_tb_n_insns(tb));
	pthread_mutex_unlock(&lock);
	if (r)
		qemu_plugin_register_vcpu_tb_exec_inline(tb, INLINE_ADD_U64, &r->count, 1);
}

static void for_each(void (*fn)(struct rec *, void *), void *arg)
{
	size_t c, i;
	pthread_mutex_lock(&lock);
	for (c = 0; c < nchunks; c++) {
		size_t n = (c == nchunks - 1) ? used_in_chunk : CHUNK;
		for (i = 0; i < n; i++)
			fn(&chunks[c][i], arg);
	}
	pthread_mutex_unlock(&lock);
}

static void zero(struct rec *r, void *arg)
{
	(void)arg;
	r->count = 0;
}

static void put(struct rec *r, void *arg)
{
	if (r->count)
		fprintf((FILE *)arg, "%llx %u %llu\n", (unsigned long long)r->vaddr, r->insns,
			(unsigned long long)r->count);
}

static void dump(const char *name)
{
	char path[4200], tmp[4300];
	snprintf(path, sizeof(path), "%s/%s.tbprof", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.part", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	for_each(put, f);
	fclose(f);
	rename(tmp, path);
}

static void *control(void *arg)
{
	char ctl[4200], buf[256];
	(void)arg;
	snprintf(ctl, sizeof(ctl), "%s/tbprof.ctl", dir);
	for (;;) {
		usleep(20000);
		FILE *f = fopen(ctl, "r");
		if (!f)
			continue;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = 0;
		if (n == 0 || buf[n - 1] != '\n')
			continue; /* not fully written yet */
		buf[n - 1] = 0;
		if (strcmp(buf, "start") == 0) {
			for_each(zero, NULL);
		} else if (strncmp(buf, "stop ", 5) == 0 && buf[5] && !strchr(buf + 5, '/')) {
			dump(buf + 5);
		}
		unlink(ctl);
	}
	return NULL;
}

static void at_exit(qemu_plugin_id_t id, void *userdata)
{
	(void)id;
	(void)userdata;
	dump("exit");
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
							       const struct qemu_info_t *info,
							       int argc, char **argv)
{
	pthread_t t;
	int i;
	(void)info;
	for (i = 0; i < argc; i++)
		if (strncmp(argv[i], "dir=", 4) == 0)
			snprintf(dir, sizeof(dir), "%s", argv[i] + 4);
	if (!dir[0]) {
		fprintf(stderr, "tbprof: needs dir=DIR\n");
		return -1;
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_trans);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	if (pthread_create(&t, NULL, control, NULL) != 0)
		return -1;
	pthread_detach(t);
	return 0;
}
