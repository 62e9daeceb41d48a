/* switch-probe: what one wake-up of another task costs in this guest.
 *
 * A message goes round between two tasks over two pipes, N times, SPACING_MS apart
 * (an idle ping's pattern: the CPU idles between rounds), and the median round trip
 * is printed, for two processes (every hand-over changes the address space: a CR3
 * write, on which QEMU's TCG flushes its soft TLB and jump cache) and for two threads
 * of one process (no address-space change). A userspace driver adds two hand-overs
 * between processes to every ping; the kernel driver none.
 *
 * With a usbfs device node as third argument it also times, in a tight loop, a system
 * call that does nothing (getppid) and the call a userspace driver makes once per
 * transfer at the least besides its SUBMITURB: USBDEVFS_REAPURBNDELAY with nothing to reap
 * (EAGAIN). Under TCG every system call is an exception out of translated code and
 * back; a driver that makes two per frame pays that where the kernel's driver does not.
 *
 * usage: switch-probe [N] [SPACING_MS] [USBFS_NODE]   (defaults 30, 200)
 * prints: switch-probe rounds=N proc_us=MEDIAN thread_us=MEDIAN
 *         [getppid_ns=MEDIAN reap_ns=MEDIAN]   (medians of 9 batches of 20000 calls)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/usbdevice_fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int ab[2], ba[2];

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

/* the other end: echo every byte back until EOF */
static void *echo(void *arg)
{
	char c;
	(void)arg;
	while (read(ab[0], &c, 1) == 1)
		if (write(ba[1], &c, 1) != 1)
			break;
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double rounds(int n, int spacing_ms)
{
	double *t = calloc(n, sizeof *t);
	struct timespec gap = { spacing_ms / 1000, (spacing_ms % 1000) * 1000000L };
	char c = 'x';
	for (int i = 0; i < n; i++) {
		nanosleep(&gap, NULL);
		double t0 = now_us();
		if (write(ab[1], &c, 1) != 1 || read(ba[0], &c, 1) != 1) {
			perror("switch-probe: pipe");
			exit(1);
		}
		t[i] = now_us() - t0;
	}
	qsort(t, n, sizeof *t, cmp);
	double m = t[n / 2];
	free(t);
	return m;
}

/* median ns per call of `call` over 9 batches of 20000 calls */
static double per_call_ns(int (*call)(int), int fd)
{
	enum { BATCHES = 9, CALLS = 20000 };
	double t[BATCHES];
	for (int b = 0; b < BATCHES; b++) {
		double t0 = now_us();
		for (int i = 0; i < CALLS; i++)
			if (call(fd) < 0) {
				perror("switch-probe: system call");
				exit(1);
			}
		t[b] = (now_us() - t0) * 1e3 / CALLS;
	}
	qsort(t, BATCHES, sizeof *t, cmp);
	return t[BATCHES / 2];
}

static int null_call(int fd)
{
	(void)fd;
	return syscall(SYS_getppid) > 0 ? 0 : -1;
}

static int reap_call(int fd)
{
	void *urb;
	if (ioctl(fd, USBDEVFS_REAPURBNDELAY, &urb) == 0) {
		fprintf(stderr, "switch-probe: reaped an URB nobody submitted\n");
		return -1;
	}
	return errno == EAGAIN ? 0 : -1;
}

static void open_pipes(void)
{
	if (pipe(ab) || pipe(ba)) {
		perror("switch-probe: pipe");
		exit(1);
	}
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 30;
	int spacing = argc > 2 ? atoi(argv[2]) : 200;
	if (n < 1 || spacing < 0) {
		fprintf(stderr, "usage: switch-probe [N] [SPACING_MS] [USBFS_NODE]\n");
		return 2;
	}

	open_pipes();
	pid_t pid = fork();
	if (pid < 0) {
		perror("switch-probe: fork");
		return 1;
	}
	if (pid == 0) {
		close(ab[1]);
		close(ba[0]);
		echo(NULL);
		_exit(0);
	}
	close(ab[0]);
	close(ba[1]);
	double proc = rounds(n, spacing);
	close(ab[1]);
	close(ba[0]);
	waitpid(pid, NULL, 0);

	open_pipes();
	pthread_t th;
	if (pthread_create(&th, NULL, echo, NULL)) {
		perror("switch-probe: pthread_create");
		return 1;
	}
	double thread = rounds(n, spacing);
	close(ab[1]);
	pthread_join(th, NULL);
	close(ab[0]);
	close(ba[0]);
	close(ba[1]);

	printf("switch-probe rounds=%d proc_us=%.0f thread_us=%.0f", n, proc, thread);
	if (argc > 3) {
		int fd = open(argv[3], O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			perror(argv[3]);
			return 1;
		}
		printf(" getppid_ns=%.0f", per_call_ns(null_call, fd));
		printf(" reap_ns=%.0f", per_call_ns(reap_call, fd));
		close(fd);
	}
	printf("\n");
	return 0;
}
